"""One set of rules for configuration values, shared by BEATsConfig and beats-train's configs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from beats_core.coercion import coerce
from beats_core.errors import ConfigError


@dataclass
class _Nested:
    size: int = 1

    @classmethod
    def from_dict(cls, values):
        return cls(**{key: coerce(value, int, f"_Nested.{key}") for key, value in values.items()})


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (True, bool, True),
        (1, bool, True),
        (0, bool, False),
        (12.0, int, 12),
        (3, float, 3.0),
        ("1e-4", float, 1e-4),
        (None, float | None, None),
        ("2", float | None, 2.0),
        ([0.9, 0.98], tuple[float, float], (0.9, 0.98)),
        ({"size": 3}, _Nested, _Nested(3)),
        ("gelu", str, "gelu"),
    ],
)
def test_accepted_values_are_normalised(value, hint, expected):
    assert coerce(value, hint, "X.field") == expected


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        ("yes", bool, "X.field='yes' must be true or false"),
        (2, bool, "X.field=2 must be true or false"),
        (True, int, "X.field=True must be a whole number"),
        (1.5, int, "X.field=1.5 must be a whole number"),
        (False, float, "X.field=False must be a number"),
        (float("nan"), float, "X.field=nan must be a number"),
        ("fast", float, "X.field='fast' must be a number"),
        (3, str, "X.field=3 must be a string"),
        ([1.0], tuple[float, float], "X.field=[1.0] must be a list of 2 numbers"),
        (5, _Nested, "X.field=5 must be a _Nested or a mapping of its fields"),
        ({"size": "big"}, _Nested, "X.field: _Nested.size='big' must be a whole number"),
    ],
)
def test_rejected_values_name_the_field_the_value_and_the_type(value, hint, message):
    with pytest.raises(ConfigError) as error:
        coerce(value, hint, "X.field")
    assert str(error.value) == message
