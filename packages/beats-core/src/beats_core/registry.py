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

import dataclasses
import difflib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from beats_core.errors import ConfigError, PluginWarning, UnknownModelError
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

#: The Hugging Face Hub repository types a checkpoint can live in.
REPO_TYPES = ("model", "dataset", "space")
#: The prefix of a model name that is a Hub repository rather than a registered name.
HUB_PREFIX = "hf-hub:"
#: The checkpoint file of a repository named ``hf-hub:owner/name``.
HUB_CHECKPOINT_FILENAME = "beats_checkpoint.pt"

_REPO_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelInfo:
    """Where a pretrained checkpoint comes from and what it is.

    The checkpoint is one file in the official BEATs layout (``{"cfg", "model",
    ["label_dict"]}``) in a Hugging Face Hub repository.

    Attributes:
        repo_id: the Hub repository, ``"owner/name"``.
        filename: the path of the checkpoint file inside the repository.
        repo_type: ``"model"``, ``"dataset"`` or ``"space"``.
        revision: the branch, tag or commit to download; a 40-hex commit pins the file.
        sha256: the file's SHA-256 as 64 lowercase hex digits, when known; every download
            is checked against it.
        size: the file's size in bytes, when known.
        description: one line about the checkpoint: architecture, training data, paper.
        licence: the licence of the weights, as an SPDX identifier (``"mit"``).
        source: the URL of the original release (code repository, paper or model card).
        finetuned: whether the checkpoint is a fine-tuned classifier (it has a
            ``predictor`` head and a ``label_dict``).
        num_classes: the number of classes of a fine-tuned classifier, else ``None``.

    Raises:
        ConfigError: a field has an invalid value; the message names the field.
    """

    repo_id: str
    filename: str
    repo_type: str = "model"
    revision: str = "main"
    sha256: str | None = None
    size: int | None = None
    description: str = ""
    licence: str | None = None
    source: str | None = None
    finetuned: bool = False
    num_classes: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.repo_id, str) or not _REPO_ID.fullmatch(self.repo_id):
            problems.append(f"repo_id must look like 'owner/name', got {self.repo_id!r}")
        if not isinstance(self.filename, str) or not self.filename or self.filename.startswith("/"):
            problems.append(f"filename must be a path inside the repository, got {self.filename!r}")
        if self.repo_type not in REPO_TYPES:
            problems.append(f"repo_type must be one of {list(REPO_TYPES)}, got {self.repo_type!r}")
        if not isinstance(self.revision, str) or not self.revision:
            problems.append(f"revision must be a branch, tag or commit, got {self.revision!r}")
        if self.sha256 is not None and not (isinstance(self.sha256, str) and _SHA256.fullmatch(self.sha256)):
            problems.append(f"sha256 must be 64 lowercase hexadecimal digits, got {self.sha256!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size <= 0):
            problems.append(f"size must be a positive number of bytes, got {self.size!r}")
        if self.num_classes is not None and (not isinstance(self.num_classes, int) or self.num_classes <= 0):
            problems.append(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if problems:
            raise ConfigError(
                f"invalid ModelInfo for {self.repo_id!r}/{self.filename!r}: " + "; ".join(problems)
            )

    @property
    def uri(self) -> str:
        """The file as an ``hf://`` URI (the form ``huggingface_hub.HfFileSystem`` reads).

        Example: ``hf://datasets/ninanor/beats-checkpoints@main/BEATs_iter3_plus_AS2M.pt``.
        """
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"hf://{prefix}{self.repo_id}@{quote(self.revision, safe='')}/{self.filename}"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON-serialisable), plus ``uri``."""
        return {**dataclasses.asdict(self), "uri": self.uri}


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
    registrations = _model_registrations()
    if name in registrations:
        return registrations[name]
    known = sorted(registrations, key=_natural_key)
    by_lower = {n.lower(): n for n in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    listing = ", ".join(repr(n) for n in known) if known else "none (is beats-core installed properly?)"
    raise UnknownModelError(
        f"unknown model {name!r}.{hint} Registered models: {listing}. Run `beats models` to list them "
        "with their sources, or pass the path of a local checkpoint file."
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
