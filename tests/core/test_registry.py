from __future__ import annotations

import hashlib
import json

import pytest

from beats_core import (
    DEFAULT_MODEL,
    ConfigError,
    ModelInfo,
    PluginWarning,
    UnknownModelError,
    get_model_info,
    hookimpl,
    list_available_models,
)
from beats_core.cli import main
from beats_core.plugins import get_plugin_manager
from beats_core.registry import BUILTIN_MODELS, find_registration


class _Models:
    """An in-process plugin registering the given models."""

    def __init__(self, **models: object) -> None:
        self.models = models

    @hookimpl
    def beats_models(self):
        return self.models


@pytest.fixture
def register():
    manager = get_plugin_manager()
    plugins = []

    def register(**models: object) -> None:
        plugin = _Models(**models)
        manager.register(plugin)
        plugins.append(plugin)

    yield register
    for plugin in plugins:
        manager.unregister(plugin)


def _info(filename: str = "x.pt", **fields: object) -> ModelInfo:
    return ModelInfo(repo_id="someone/checkpoints", filename=filename, **fields)


def test_builtins_come_from_the_project_checkpoint_repository_with_their_licences():
    models = list_available_models()
    assert list(models)[:2] == ["BEATs_iter3_plus_AS2M", "openbeats"]
    assert DEFAULT_MODEL == "BEATs_iter3_plus_AS2M"
    beats, openbeats = models["BEATs_iter3_plus_AS2M"], models["openbeats"]
    for info, filename in ((beats, "BEATs_iter3_plus_AS2M.pt"), (openbeats, "openbeats.pt")):
        assert (info.repo_id, info.repo_type, info.filename) == (
            "ninanor/beats-checkpoints",
            "dataset",
            filename,
        )
        assert info.finetuned is False and info.num_classes is None
    assert beats.licence == "mit" and "Microsoft" in beats.description
    assert "microsoft/unilm" in beats.source
    assert openbeats.licence == "cc-by-4.0" and "OpenBEATs" in openbeats.description
    assert beats.uri == "hf://datasets/ninanor/beats-checkpoints@main/BEATs_iter3_plus_AS2M.pt"
    assert find_registration(DEFAULT_MODEL).distribution == "beats-core"


def test_model_info_is_frozen_serialisable_and_validated():
    info = _info(sha256="ab" * 32, size=10, revision="refs/pr/1", finetuned=True, num_classes=3)
    with pytest.raises(AttributeError):
        info.filename = "y.pt"
    as_dict = json.loads(json.dumps(info.to_dict()))
    assert as_dict["uri"] == "hf://someone/checkpoints@refs%2Fpr%2F1/x.pt"
    assert ModelInfo(**{k: v for k, v in as_dict.items() if k != "uri"}) == info
    for bad, field in [
        ({"repo_type": "models"}, "repo_type"),
        ({"sha256": "AB" * 32}, "sha256"),
        ({"size": 0}, "size"),
        ({"num_classes": -1}, "num_classes"),
    ]:
        with pytest.raises(ConfigError, match=field):
            _info(**bad)
    with pytest.raises(ConfigError, match="repo_id"):
        ModelInfo(repo_id="a/b/c", filename="x.pt")


def test_filter_is_fnmatch_case_insensitive_and_sorting_is_natural(register):
    register(test_b10=_info(), test_b2=_info(), test_b1=_info(), test_a=_info())
    assert list(list_available_models("TEST_B*")) == ["test_b1", "test_b2", "test_b10"]
    assert list(list_available_models(["test_a", "*b1?"])) == ["test_a", "test_b10"]
    assert list_available_models("nothing*") == {}


def test_unknown_name_lists_the_models_and_suggests_the_closest():
    with pytest.raises(UnknownModelError) as error:
        get_model_info("beats_iter3_plus_as2")
    message = str(error.value)
    assert "Did you mean 'BEATs_iter3_plus_AS2M'?" in message
    assert "'openbeats'" in message and "`beats models`" in message
    assert isinstance(error.value, LookupError)  # plain `except LookupError` works too


def test_third_party_plugin_package_registers_models_and_a_command(install_plugin, capsys):
    install_plugin("beats-plugin-model")
    models = list_available_models()
    assert {"BEATs_iter3_plus_AS2M", "openbeats", "test_tiny_pretrained", "test_tiny_finetuned"} <= set(
        models
    )
    assert find_registration("test_tiny_pretrained").distribution == "beats-plugin-model"
    assert models["test_tiny_finetuned"].num_classes == 5
    assert main(["tiny-hello"]) == 0
    assert "hello from beats-plugin-model" in capsys.readouterr().out


def test_pinned_hash_of_the_plugin_model_matches_the_reference_file(install_plugin, reference_dir):
    install_plugin("beats-plugin-model")
    info = get_model_info("test_tiny_pretrained")
    data = (reference_dir / info.filename).read_bytes()
    assert (info.sha256, info.size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_broken_plugin_warns_and_the_good_ones_still_register(install_plugin):
    install_plugin("beats-plugin-model")
    install_plugin("beats-plugin-broken")
    with pytest.warns(PluginWarning, match="'beats-plugin-broken' failed to load"):
        models = list_available_models()
    assert {"BEATs_iter3_plus_AS2M", "openbeats", "test_tiny_pretrained"} <= set(models)


def test_a_plugin_cannot_take_a_builtin_name(register):
    register(BEATs_iter3_plus_AS2M=_info("impostor.pt"), test_own=_info("own.pt"))
    with pytest.warns(
        PluginWarning, match=r"'BEATs_iter3_plus_AS2M'.*already taken by distribution 'beats-core'"
    ):
        models = list_available_models()
    assert models["BEATs_iter3_plus_AS2M"] == BUILTIN_MODELS["BEATs_iter3_plus_AS2M"]
    assert models["test_own"].filename == "own.pt"


def test_a_registration_that_is_not_a_model_info_is_ignored_with_a_warning(register):
    register(test_dict={"repo_id": "a/b", "filename": "c.pt"}, test_good=_info())
    with pytest.warns(PluginWarning, match="'test_dict' as dict, expected a beats_core.ModelInfo"):
        models = list_available_models("test_*")
    assert list(models) == ["test_good"]
