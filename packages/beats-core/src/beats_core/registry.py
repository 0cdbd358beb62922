"""The registry of pretrained BEATs checkpoints, filled by plugins.

A model name (what users type: ``beats download BEATs_iter3_plus_AS2M``) maps to a
:class:`ModelInfo` that says where the checkpoint lives on the Hugging Face Hub and what it
is. beats-core registers its built-ins (:data:`BUILTIN_MODELS`) through its own ``beats``
entry point, exactly as a third-party package adds its models::

    # my_package/beats_plugin.py, listed under [project.entry-points.beats]
    from beats_core import ModelInfo, hookimpl

    @hookimpl
    def beats_models():
        return {"my_beats": ModelInfo(repo_id="me/my-beats", filename="my_beats.pt")}

A name registered twice keeps its first registration (built-ins come first) and the
duplicate is reported with a :class:`~beats_core.errors.PluginWarning`.

A checkpoint that is not registered can be named by its Hub repository instead:
``hf-hub:owner/name`` (or ``hf-hub:owner/name@revision``) means the file
:data:`HUB_CHECKPOINT_FILENAME` of that model repository, the file beats-train's
``BEATsTrainer.push_to_hub`` uploads (see :func:`hub_model_info`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from beats_core.errors import PluginWarning, UnknownModelError
from beats_core.lookup import lookup
from beats_core.model_info import REPO_TYPES, ModelInfo
from beats_core.plugins import Registration, collect_registrations

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "HUB_CHECKPOINT_FILENAME",
    "HUB_PREFIX",
    "REPO_TYPES",
    "ModelInfo",
    "find_registration",
    "get_model_info",
    "hub_model_info",
    "list_available_models",
]

#: The prefix of a model name that is a Hub repository rather than a registered name.
HUB_PREFIX = "hf-hub:"
#: The checkpoint file of a repository named ``hf-hub:owner/name``.
HUB_CHECKPOINT_FILENAME = "beats_checkpoint.pt"

_REPO_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


# ---------------------------------------------------------------------------
# Built-in checkpoints
# ---------------------------------------------------------------------------

#: The model used when none is named.
DEFAULT_MODEL = "BEATs_iter3_plus_AS2M"


def _beats_checkpoints(filename: str, **overrides: Any) -> ModelInfo:
    """An entry of the project's checkpoint repository; each entry states only what differs."""
    fields: dict[str, Any] = {
        "repo_id": "ninanor/beats-checkpoints",
        "repo_type": "dataset",
        "revision": "main",
        "filename": filename,
    }
    return ModelInfo(**{**fields, **overrides})


#: The checkpoints beats-core registers itself (through its ``beats`` entry point).
BUILTIN_MODELS: Mapping[str, ModelInfo] = MappingProxyType(
    {
        DEFAULT_MODEL: _beats_checkpoints(
            "BEATs_iter3_plus_AS2M.pt",
            description=(
                "BEATs iter3+ pre-trained on AudioSet-2M (Chen et al., ICML 2023), 90M parameters, "
                "no classifier head; Microsoft's weights under Microsoft's MIT licence"
            ),
            licence="mit",
            source="https://github.com/microsoft/unilm/tree/master/beats",
        ),
        "openbeats": _beats_checkpoints(
            "openbeats.pt",
            description=(
                "OpenBEATs base, iteration 3 (Bharadwaj et al., WASPAA 2025): BEATs re-trained in ESPnet "
                "on open data, no classifier head; the OpenBEATs licence applies"
            ),
            licence="cc-by-4.0",
            source="https://arxiv.org/abs/2507.14129",
        ),
    }
)


# ---------------------------------------------------------------------------
# Lookup
# ---------------------------------------------------------------------------


def list_available_models(filter: str | Sequence[str] | None = None) -> dict[str, ModelInfo]:
    """Return the registered checkpoints, name -> :class:`ModelInfo`, in natural order.

    Every installed plugin is asked through the ``beats_models`` hook on each call, so
    a plugin registered in the running process shows up at once.

    Args:
        filter: an ``fnmatch`` pattern, or several (a name matching any is kept), compared
            case-insensitively, e.g. ``"BEATs*"``. ``None`` keeps every name.

    Returns:
        A dict of model name to :class:`ModelInfo`, sorted naturally (``x2`` before ``x10``).
    """
    registrations = _model_registrations()
    names = sorted(registrations, key=_natural_key)
    if filter is not None:
        patterns = [filter] if isinstance(filter, str) else list(filter)
        names = [name for name in names if any(fnmatchcase(name.lower(), p.lower()) for p in patterns)]
    return {name: registrations[name].value for name in names}


def find_registration(name: str) -> Registration:
    """Return the registration of a model name: its :class:`ModelInfo` and the distribution behind it.

    Args:
        name: a registered model name, e.g. ``"BEATs_iter3_plus_AS2M"`` (case matters).

    Returns:
        The :class:`~beats_core.plugins.Registration`; ``.value`` is the ModelInfo.

    Raises:
        UnknownModelError: no plugin registers ``name``; the message gives the closest
            registered name and lists them all.
    """
    return lookup(
        name,
        _model_registrations(),
        kind="model",
        error=UnknownModelError,
        advice="Run `beats models` to list them with their sources, or pass the path of a local "
        "checkpoint file.",
        order=_natural_key,
    )


def get_model_info(name: str) -> ModelInfo:
    """Return the :class:`ModelInfo` registered under ``name``.

    Args:
        name: a registered model name, e.g. ``"openbeats"`` (case matters).

    Returns:
        Where the checkpoint comes from and what it is.

    Raises:
        UnknownModelError: no plugin registers ``name``; the message gives the closest
            registered name and lists them all.
    """
    return find_registration(name).value


def hub_model_info(name: str) -> ModelInfo | None:
    """Return where a model named ``hf-hub:owner/name[@revision]`` comes from, or ``None`` for other names.

    The checkpoint is the file :data:`HUB_CHECKPOINT_FILENAME` (``beats_checkpoint.pt``) of the
    model repository ``owner/name``, at ``revision`` (default ``main``); beats-train's
    ``BEATsTrainer.push_to_hub`` uploads a fine-tuned model there. Such names are not in the
    registry and need no plugin.

    Args:
        name: a model name as a user typed it, e.g. ``"hf-hub:me/beats-birds@v1"``.

    Returns:
        The :class:`ModelInfo` of the file, or ``None`` if ``name`` does not start with
        :data:`HUB_PREFIX`.

    Raises:
        UnknownModelError: the part after the prefix is not ``owner/name`` with an
            optional ``@revision``; the message shows the expected form.
    """
    if not isinstance(name, str) or not name.startswith(HUB_PREFIX):
        return None
    repo_id, _, revision = name.removeprefix(HUB_PREFIX).partition("@")
    if "/" not in repo_id or not _REPO_ID.fullmatch(repo_id) or (_ and not revision):
        raise UnknownModelError(
            f"{name!r} is not a Hub model name: write hf-hub:OWNER/NAME or hf-hub:OWNER/NAME@REVISION, "
            "e.g. hf-hub:me/beats-birds"
        )
    return ModelInfo(
        repo_id=repo_id,
        filename=HUB_CHECKPOINT_FILENAME,
        revision=revision or "main",
        description=f"the BEATs checkpoint of the Hub model repository {repo_id}",
        source=f"https://huggingface.co/{repo_id}",
    )


def _model_registrations() -> dict[str, Registration]:
    registrations = {}
    for name, registration in collect_registrations("beats_models").items():
        if isinstance(registration.value, ModelInfo):
            registrations[name] = registration
        else:
            warnings.warn(
                f"beats plugin from distribution {registration.distribution!r} registers model {name!r} as "
                f"{type(registration.value).__name__}, expected a beats_core.ModelInfo; it is ignored. "
                f"Upgrade or uninstall {registration.distribution!r}.",
                PluginWarning,
                stacklevel=3,
            )
    return registrations


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]
