"""The BEATs configuration: every field of the official ``BEATsConfig``, plus fbank statistics.

An official checkpoint stores its configuration as a plain ``cfg`` dict.
:class:`BEATsConfig` reads such a dict exactly as the official loader does (fields
that are missing take the official defaults, keys it does not know are kept) and
writes it back with :meth:`BEATsConfig.to_dict`, so a checkpoint saved by this
library loads in the official code and vice versa.

Two fields are ours: ``fbank_mean`` and ``fbank_std``, the statistics that
normalise the log-mel fbank before the patch embedding. They default to the
official constants; a dataset-specific fine-tune or OpenBEATs sets other values,
and they travel inside the checkpoint's ``cfg``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from beats_core.coercion import coerce
from beats_core.errors import ConfigError

__all__ = ["ACTIVATIONS", "SIZE_LIMITS", "BEATsConfig"]

#: Values of ``activation_fn`` that the official code accepts.
ACTIVATIONS = ("relu", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear", "glu")

#: The largest value of each size field that :meth:`BEATsConfig.validate` accepts: far beyond
#: every released model (base: 12 layers of 768, large: 24 of 1024), and small enough that a
#: model is built in moments. A damaged or hostile cfg (a million layers, a width of 2**40)
#: is refused before anything is built.
SIZE_LIMITS = {
    "embed_dim": 16_384,
    "encoder_layers": 512,
    "encoder_embed_dim": 16_384,
    "encoder_ffn_embed_dim": 131_072,
    "encoder_attention_heads": 1_024,
    "conv_pos": 4_096,
    "conv_pos_groups": 16_384,
    "num_buckets": 65_536,
    "max_distance": 1 << 24,
    "predictor_class": 1 << 20,
}


@dataclass
class BEATsConfig:
    """Architecture, regularisation and preprocessing settings of a BEATs model.

    The field names, order and defaults are those of the official ``BEATsConfig``
    (``microsoft/unilm``, ``beats/BEATs.py``). Use :meth:`from_dict` to read the
    ``cfg`` dict of a checkpoint and :meth:`to_dict` to write one; the named sizes
    :meth:`base`, :meth:`large` and :meth:`tiny` build configurations for random models.

    Attributes:
        input_patch_size: side of the square fbank patches (frames x mel bins); 16 in
            every released checkpoint. The official default ``-1`` is not buildable.
        embed_dim: width of the patch embedding (512 in the released models).
        conv_bias: whether the patch embedding has a bias.
        encoder_layers: number of transformer layers.
        encoder_embed_dim: transformer width C.
        encoder_ffn_embed_dim: hidden width of the feed-forward blocks.
        encoder_attention_heads: number of attention heads (C must be divisible by it).
        activation_fn: feed-forward activation, one of :data:`ACTIVATIONS`.
        layer_wise_gradient_decay_ratio: gradient scale applied to the input of every
            layer during backprop (identity in the forward pass); 1.0 disables it.
        layer_norm_first: pre-LN layers (with a final LayerNorm) instead of post-LN.
        deep_norm: DeepNorm residual scaling alpha = (2L)^(1/4) in post-LN layers.
        dropout: dropout after the encoder input stage, attention and feed-forward blocks.
        attention_dropout: dropout on the attention probabilities.
        activation_dropout: dropout after the feed-forward activation.
        encoder_layerdrop: probability of skipping a whole layer in training.
        dropout_input: dropout on the projected patch embeddings.
        conv_pos: kernel size of the convolutional positional embedding.
        conv_pos_groups: groups of that convolution (C must be divisible by it).
        relative_position_embedding: add a bucketed relative position bias to attention.
        num_buckets: number of relative position buckets (both directions together).
        max_distance: distance (in tokens) at which the logarithmic buckets saturate.
        gru_rel_pos: gate the relative position bias with the query (gated rel-pos).
        finetuned_model: the model has a classifier head (``predictor``).
        predictor_dropout: dropout on the tokens before the classifier head.
        predictor_class: number of classes of the head.
        fbank_mean: mean subtracted from the log-mel fbank (ours, official constant).
        fbank_std: the fbank is divided by ``2 * fbank_std`` (ours, official constant).
        extra: keys of the source dict that are not fields; kept and written back.
    """

    input_patch_size: int = -1
    embed_dim: int = 512
    conv_bias: bool = False

    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"

    layer_wise_gradient_decay_ratio: float = 1.0
    layer_norm_first: bool = False
    deep_norm: bool = False

    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0

    conv_pos: int = 128
    conv_pos_groups: int = 16

    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False

    finetuned_model: bool = False
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    fbank_mean: float = 15.41663
    fbank_std: float = 6.55582

    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ dict I/O
    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> BEATsConfig:
        """Build a configuration from a checkpoint's ``cfg`` dict, as the official loader does.

        Missing fields take the official defaults; keys that are not fields are kept
        in :attr:`extra` (and written back by :meth:`to_dict`). Values are checked
        for their type (``True``/``False`` and whole-number floats are accepted
        where the official code would accept them); ranges are checked by
        :meth:`validate` when a model is built.

        Args:
            cfg: the ``cfg`` mapping of a checkpoint.

        Returns:
            The configuration.

        Raises:
            ConfigError: ``cfg`` is not a mapping, or a field has a value of the
                wrong type; the message names the field.
        """
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"a BEATs cfg must be a dict of settings, got {type(cfg).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in cfg.items():
            if key in known:
                values[key] = coerce(value, _field_types()[key], f"BEATs config field {key!r}")
            else:
                extra[str(key)] = value
        return cls(**values, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """Return the ``cfg`` dict of a checkpoint: every field, then the kept extra keys.

        Returns:
            A plain dict that the official ``BEATsConfig(cfg)`` accepts.
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def replace(self, **changes: Any) -> BEATsConfig:
        """Return a copy with some fields changed (``extra`` is copied, not shared).

        Args:
            **changes: field names and their new values; other names go to :attr:`extra`.

        Returns:
            The new configuration.

        Raises:
            ConfigError: a value has the wrong type.
        """
        data = self.to_dict()
        data.update(changes)
        return BEATsConfig.from_dict(data)

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check that a model can be built from this configuration.

        Raises:
            ConfigError: a value is out of range or inconsistent with another; the
                message names the field, the value and what is accepted.
        """
        for name, hint in _field_types().items():
            coerce(getattr(self, name), hint, f"BEATs config field {name!r}")
        _positive(self, "input_patch_size", hint="released BEATs checkpoints use 16")
        if self.input_patch_size > 128:
            _fail("input_patch_size", self.input_patch_size, "must be at most 128 (the number of mel bins)")
        for name, limit in SIZE_LIMITS.items():
            _positive(self, name)
            if getattr(self, name) > limit:
                _fail(
                    name,
                    getattr(self, name),
                    f"is beyond any BEATs model (at most {limit:,}); the cfg is damaged or not a BEATs cfg",
                )
        if self.encoder_embed_dim % self.encoder_attention_heads:
            _fail(
                "encoder_attention_heads",
                self.encoder_attention_heads,
                f"must divide encoder_embed_dim={self.encoder_embed_dim}",
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            _fail(
                "conv_pos_groups",
                self.conv_pos_groups,
                f"must divide encoder_embed_dim={self.encoder_embed_dim}",
            )
        if self.activation_fn not in ACTIVATIONS:
            _fail("activation_fn", self.activation_fn, f"must be one of {', '.join(ACTIVATIONS)}")
        if self.deep_norm and self.layer_norm_first:
            _fail("deep_norm", self.deep_norm, "cannot be combined with layer_norm_first=True")
        for name in (
            "dropout",
            "attention_dropout",
            "activation_dropout",
            "encoder_layerdrop",
            "dropout_input",
            "predictor_dropout",
        ):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                _fail(name, value, "must be a probability in [0, 1)")
        if self.relative_position_embedding:
            if self.num_buckets < 4 or self.num_buckets % 2:
                _fail("num_buckets", self.num_buckets, "must be an even number >= 4")
            if self.max_distance <= self.num_buckets // 4:
                _fail(
                    "max_distance",
                    self.max_distance,
                    f"must exceed num_buckets / 4 = {self.num_buckets // 4}",
                )
        if (
            not math.isfinite(self.layer_wise_gradient_decay_ratio)
            or self.layer_wise_gradient_decay_ratio <= 0
        ):
            _fail("layer_wise_gradient_decay_ratio", self.layer_wise_gradient_decay_ratio, "must be > 0")
        if not math.isfinite(self.fbank_mean):
            _fail("fbank_mean", self.fbank_mean, "must be a finite number")
        if not math.isfinite(self.fbank_std) or self.fbank_std <= 0:
            _fail("fbank_std", self.fbank_std, "must be a positive number")

    # --------------------------------------------------------------- named sizes
    @classmethod
    def base(cls, **overrides: Any) -> BEATsConfig:
        """The architecture of the released BEATs iter3 / iter3+ AS2M checkpoints (90.3 M parameters).

        12 layers, 768 wide, 12 heads, feed-forward 3072, patch embedding 512, DeepNorm,
        gated relative position bias (320 buckets, max distance 800), layer-wise
        gradient decay 0.6, layerdrop 0.05, no dropout.

        Args:
            **overrides: fields to change, e.g. ``finetuned_model=True, predictor_class=50``.

        Returns:
            The configuration.
        """
        values: dict[str, Any] = {
            "input_patch_size": 16,
            "embed_dim": 512,
            "conv_bias": False,
            "encoder_layers": 12,
            "encoder_embed_dim": 768,
            "encoder_ffn_embed_dim": 3072,
            "encoder_attention_heads": 12,
            "activation_fn": "gelu",
            "layer_wise_gradient_decay_ratio": 0.6,
            "layer_norm_first": False,
            "deep_norm": True,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "activation_dropout": 0.0,
            "encoder_layerdrop": 0.05,
            "dropout_input": 0.0,
            "conv_pos": 128,
            "conv_pos_groups": 16,
            "relative_position_embedding": True,
            "num_buckets": 320,
            "max_distance": 800,
            "gru_rel_pos": True,
            "finetuned_model": False,
        }
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def large(cls, **overrides: Any) -> BEATsConfig:
        """The Large size used by OpenBEATs-Large: 24 layers, 1024 wide, 16 heads, feed-forward 4096.

        Everything else is as in :meth:`base`.

        Args:
            **overrides: fields to change.

        Returns:
            The configuration.
        """
        values: dict[str, Any] = {
            "encoder_layers": 24,
            "encoder_embed_dim": 1024,
            "encoder_ffn_embed_dim": 4096,
            "encoder_attention_heads": 16,
        }
        values.update(overrides)
        return cls.base(**values)

    @classmethod
    def tiny(cls, **overrides: Any) -> BEATsConfig:
        """A small, fast model with the full BEATs architecture, for tests and demos (about 95 k parameters).

        2 layers, 64 wide, 4 heads, feed-forward 128, patch embedding 32, positional
        convolution of 16 taps in 4 groups; gated relative positions and DeepNorm as
        in :meth:`base`. It has the configuration of the reference tiny checkpoints.

        Args:
            **overrides: fields to change.

        Returns:
            The configuration.
        """
        values: dict[str, Any] = {
            "embed_dim": 32,
            "encoder_layers": 2,
            "encoder_embed_dim": 64,
            "encoder_ffn_embed_dim": 128,
            "encoder_attention_heads": 4,
            "dropout": 0.1,
            "attention_dropout": 0.1,
            "encoder_layerdrop": 0.0,
            "conv_pos": 16,
            "conv_pos_groups": 4,
        }
        values.update(overrides)
        return cls.base(**values)


@functools.cache
def _field_types() -> dict[str, Any]:
    """Field name -> resolved annotation, for every field but ``extra``."""
    hints = typing.get_type_hints(BEATsConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(BEATsConfig) if f.name != "extra"}


def _positive(config: BEATsConfig, name: str, hint: str = "") -> None:
    value = getattr(config, name)
    if value < 1:
        _fail(name, value, "must be a positive whole number" + (f" ({hint})" if hint else ""))


def _fail(name: str, value: Any, requirement: str) -> None:
    raise ConfigError(f"BEATs config field {name!r}={value!r} {requirement}")
