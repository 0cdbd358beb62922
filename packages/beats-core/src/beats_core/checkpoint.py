"""Reading, loading and writing BEATs checkpoints in the official layout.

An official checkpoint is a ``torch.save``-d dict ``{"cfg": dict, "model": state_dict}``
with ``"label_dict": {int: str}`` for fine-tuned classifiers. Checkpoints are data:
they are always read with ``torch.load(weights_only=True)``.

Checkpoints in ESPnet's layout (OpenBEATs, and BEATs models trained with ESPnet)
are accepted too and converted to the official layout on reading:

* an encoder checkpoint made by ESPnet's ``generate_beats_checkpoint``: ``{"cfg",
  "model"}`` where ``cfg`` is ESPnet's ``beats_config`` (only the fields that differ
  from ESPnet's defaults, whose patch size is 16) and ``model`` also holds ESPnet's
  constant padding convolutions ``patch_embedding_pad`` / ``raw2fbank_pad``;
* a whole ESPnet model (``*.pth``, or a training checkpoint's ``"model"``): BEATs
  under an ``encoder.`` prefix, a linear classifier as ``decoder.linear_out``, and
  the configuration in the ``config.yaml`` of the experiment folder, which must
  lie next to the file. ESPnet's mean-pooling linear classifier becomes the BEATs
  head (the same logits); ``extract_features`` gives independent sigmoids of them,
  as for every BEATs head, also for a single-label ESPnet classifier.

The padding mask follows the official BEATs rule, not ESPnet's (which marks a token
as padding as soon as any of its samples is).

ESPnet keeps the fbank statistics outside the weights (``encoder_conf.fbank_mean`` /
``fbank_std`` of ``config.yaml``); they are carried into ``cfg`` as
``BEATsConfig.fbank_mean`` / ``fbank_std``. Without them, ESPnet's defaults for
OpenBEATs (the statistics of its 7M-sound corpus) are used, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from beats_core.config import BEATsConfig
from beats_core.errors import CheckpointError, ConfigError
from beats_core.model import BEATs, checkpoint_filter_fn

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "ESPNET_FBANK_MEAN",
    "ESPNET_FBANK_STD",
    "LoadedCheckpoint",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

#: File suffixes that are always read as a local checkpoint path, never as a model name.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
#: ESPnet's default fbank statistics for OpenBEATs (``espnet2/beats/utils.py``).
ESPNET_FBANK_MEAN = 15.2913
ESPNET_FBANK_STD = 5.90532

_ESPNET_MARKERS = ("patch_embedding_pad.weight", "raw2fbank_pad.weight")
_ESPNET_PREFIXES = ("encoder.patch_embedding.", "model.encoder.patch_embedding.")
_ESPNET_SPECIAL_TOKENS = ("<blank>", "<unk>")


class LoadedCheckpoint(NamedTuple):
    """What :func:`load_checkpoint` returns."""

    model: BEATs
    """The model, in eval mode, on the requested device."""
    config: BEATsConfig
    """Its configuration (the same object as ``model.cfg``)."""
    label_dict: dict[int, str] | None
    """``{class index: label}`` of a fine-tuned checkpoint, or None."""


# ------------------------------------------------------------------------------ reading
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file as plain data and return it in the official layout.

    Official checkpoints are returned as they are, with their state-dict keys
    passed through :func:`~beats_core.model.checkpoint_filter_fn` (so torch's
    weight-norm names become ``weight_g`` / ``weight_v``). ESPnet / OpenBEATs
    checkpoints are converted (see the module docstring).

    Args:
        path: the ``.pt`` / ``.pth`` file.

    Returns:
        The checkpoint dict, with at least ``"cfg"`` (dict) and ``"model"`` (a
        mapping of official parameter names to tensors), and ``"label_dict"``
        when the checkpoint has labels.

    Raises:
        CheckpointError: the file is missing, empty, truncated, holds code rather
            than plain data, or is not a BEATs checkpoint. The message names the
            file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file {str(path)!r} does not exist; pass the path of a BEATs .pt file "
            "or a model name from `beats models`"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file {str(path)!r} is empty; download it again (`beats download`)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load fails in many ways on damaged or foreign files
        raise _load_error(path, e) from e
    if _is_espnet(checkpoint):
        checkpoint = _from_espnet(checkpoint, path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a BEATs checkpoint: expected a dict with 'cfg' and 'model' "
            f"(the official layout), found {found}"
        )
    if not isinstance(checkpoint.get("cfg", {}), Mapping):
        raise CheckpointError(f"{str(path)!r} is not a BEATs checkpoint: its 'cfg' is not a dict")
    state = checkpoint["model"]
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{str(path)!r} is not a BEATs checkpoint: 'model' entries {not_tensors[:3]} are not tensors"
        )
    if "patch_embedding.weight" not in state and "encoder.patch_embedding.weight" not in state:
        raise CheckpointError(
            f"{str(path)!r} is not a BEATs checkpoint: its 'model' has no 'patch_embedding.weight' "
            f"(first keys: {list(state)[:3]}); pass a BEATs checkpoint"
        )
    result = dict(checkpoint)
    result["model"] = checkpoint_filter_fn(state)
    return result


def _load_error(path: Path, error: Exception) -> CheckpointError:
    """The CheckpointError for a file that ``torch.load(weights_only=True)`` refused."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, pickle.UnpicklingError):
        unsafe = [line for line in lines if "global" in line.lower()]
        if unsafe:
            return CheckpointError(
                f"checkpoint file {str(path)!r} holds Python objects other than plain data "
                f"(tensors, numbers, strings, dicts), so it is refused for safety ({unsafe[0]}). "
                "Re-save it as {'cfg': dict, 'model': state_dict} with torch.save."
            )
        with open(path, "rb") as file:
            head = file.read(16)
        return CheckpointError(
            f"checkpoint file {str(path)!r} is not a PyTorch checkpoint (it starts with {head!r}); "
            "if it was downloaded, it may be an error page: download it again (`beats download NAME --force`)"
        )
    return CheckpointError(
        f"checkpoint file {str(path)!r} cannot be read, it is probably truncated or corrupt "
        f"({type(error).__name__}: {lines[0] if lines else 'no detail'}); delete it and download it again "
        "(`beats download NAME --force`)"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _state_of(checkpoint: Any) -> Mapping[str, Any] | None:
    """The state dict of an official or ESPnet checkpoint object, if it has one."""
    if not isinstance(checkpoint, Mapping):
        return None
    for key in ("model", "state_dict"):
        if isinstance(checkpoint.get(key), Mapping):
            return checkpoint[key]
    if checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        return checkpoint  # a bare state dict, as ESPnet writes its *.pth model files
    return None


def _is_espnet(checkpoint: Any) -> bool:
    state = _state_of(checkpoint)
    if state is None:
        return False
    keys = [str(key) for key in state]
    return any(key in _ESPNET_MARKERS for key in keys) or any(
        key.startswith(_ESPNET_PREFIXES) for key in keys
    )


def _from_espnet(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Convert an ESPnet / OpenBEATs checkpoint to ``{"cfg", "model", ["label_dict"]}``."""
    state = checkpoint_filter_fn(_state_of(checkpoint) or {})
    experiment = _espnet_config(path)
    encoder_conf = experiment.get("encoder_conf") or {}
    if isinstance(checkpoint.get("cfg"), Mapping):
        cfg = dict(checkpoint["cfg"])
    elif experiment:
        if experiment.get("encoder") not in (None, "beats"):
            raise CheckpointError(
                f"{str(path)!r} is an ESPnet model whose encoder is {experiment.get('encoder')!r}, not BEATs"
            )
        cfg = dict(encoder_conf.get("beats_config") or {})
    else:
        raise CheckpointError(
            f"{str(path)!r} is an ESPnet model without its configuration: put the config.yaml of its "
            "ESPnet experiment next to it (the BEATs settings are its encoder_conf.beats_config)"
        )
    cfg.setdefault("input_patch_size", 16)  # ESPnet's default; the official one (-1) is not buildable
    for field, espnet_default in (("fbank_mean", ESPNET_FBANK_MEAN), ("fbank_std", ESPNET_FBANK_STD)):
        if field not in cfg:
            if field in encoder_conf:
                cfg[field] = encoder_conf[field]
            else:
                logger.warning(
                    "%s does not say its %s; using ESPnet's OpenBEATs default %s (set cfg[%r] to override)",
                    path,
                    field,
                    espnet_default,
                    field,
                )
                cfg[field] = espnet_default
    if "predictor.weight" in state:
        cfg["finetuned_model"] = True
        cfg["predictor_class"] = int(state["predictor.weight"].shape[0])
        pooling = (experiment.get("decoder_conf") or {}).get("pooling", "mean")
        if pooling != "mean":
            logger.warning(
                "%s: its ESPnet classifier pools tokens with %r, the BEATs head averages them; "
                "its probabilities will differ from ESPnet's",
                path,
                pooling,
            )
    result: dict[str, Any] = {"cfg": cfg, "model": state}
    token_list = checkpoint.get("token_list", experiment.get("token_list"))
    label_dict = _labels_from_tokens(token_list, cfg.get("predictor_class"), path)
    if label_dict is not None and cfg.get("finetuned_model"):
        result["label_dict"] = label_dict
    return result


def _espnet_config(path: Path) -> dict[str, Any]:
    """The ``config.yaml`` of the ESPnet experiment a model file belongs to, or {}."""
    config_path = path.parent / "config.yaml"
    if not config_path.is_file():
        return {}
    import yaml

    try:
        with config_path.open(encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise CheckpointError(
            f"cannot read {str(config_path)!r}, the ESPnet config of {str(path)!r}: {e}"
        ) from e
    return config if isinstance(config, dict) else {}


def _labels_from_tokens(token_list: Any, num_classes: Any, path: Path) -> dict[int, str] | None:
    """ESPnet's classification token list -> label_dict (its last two tokens are <blank>, <unk>)."""
    if not isinstance(token_list, list | tuple) or not isinstance(num_classes, int):
        return None
    labels = [str(token) for token in token_list[:num_classes]]
    if len(labels) != num_classes or any(label in _ESPNET_SPECIAL_TOKENS for label in labels):
        logger.warning("%s: its token_list does not match its %d classes; no label_dict", path, num_classes)
        return None
    return dict(enumerate(labels))


# ------------------------------------------------------------------------------ loading
def _resolve(name_or_path: str | Path, revision: str | None, cache_dir: str | Path | None) -> Path:
    path = Path(name_or_path)
    if path.is_file() or path.suffix in CHECKPOINT_SUFFIXES:
        return path
    from beats_core.download import ensure_checkpoint

    return Path(ensure_checkpoint(str(name_or_path), revision=revision, cache_dir=cache_dir))


def load_checkpoint(
    name_or_path: str | Path,
    *,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> LoadedCheckpoint:
    """Load a BEATs checkpoint: the model (in eval mode), its configuration and its labels.

    Args:
        name_or_path: a checkpoint file (official or ESPnet/OpenBEATs layout), or a
            model name from ``beats models``, which is downloaded and cached.
        map_location: device to put the model on.
        revision: for a model name, the Hub revision to use (default: the pinned one).
        cache_dir: for a model name, the download cache (default: the Hugging Face cache).

    Returns:
        ``LoadedCheckpoint(model, config, label_dict)``; ``label_dict`` is None for a
        pre-trained checkpoint. ``model.label_dict`` is set too.

    Raises:
        CheckpointError: the file is missing, unreadable, not a BEATs checkpoint, or
            its weights do not fit its configuration (the message names the key,
            both shapes and the fix).
    """
    path = _resolve(name_or_path, revision, cache_dir)
    checkpoint = read_checkpoint(path)
    try:
        config = BEATsConfig.from_dict(checkpoint.get("cfg", {}))
        with torch.device("meta"):  # no random initialisation: every weight comes from the file
            model = BEATs(config)
    except ConfigError as e:
        raise CheckpointError(
            f"{str(path)!r} has a cfg that cannot be built: {e}; fix that field of its cfg"
        ) from e
    state = checkpoint["model"]
    _check_fits(state, model, path)
    expected = model.state_dict()
    state = {key: value.to(expected[key].dtype) for key, value in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    label_dict = _label_dict(checkpoint.get("label_dict"), path)
    model.label_dict = label_dict
    model.eval()
    if torch.device(map_location) != torch.device("cpu"):
        model.to(map_location)
    return LoadedCheckpoint(model, model.cfg, label_dict)


def _check_fits(state: Mapping[str, torch.Tensor], model: BEATs, path: Path) -> None:
    expected = model.state_dict()
    fix = "its cfg and its weights do not belong together; use the cfg the weights were trained with"
    missing = [key for key in expected if key not in state]
    if missing:
        raise CheckpointError(
            f"{str(path)!r} lacks {len(missing)} weight(s) that its cfg needs, e.g. {missing[0]!r} "
            f"of shape {tuple(expected[missing[0]].shape)}; {fix}"
        )
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise CheckpointError(
            f"{str(path)!r} has {len(unexpected)} weight(s) that a BEATs model with its cfg does not have, "
            f"e.g. {unexpected[0]!r} of shape {tuple(state[unexpected[0]].shape)}; {fix}"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{str(path)!r}: weight {key!r} has shape {tuple(state[key].shape)} in the file but "
                f"{tuple(tensor.shape)} in a BEATs model built from its cfg; {fix}"
            )


def _label_dict(labels: Any, path: Path) -> dict[int, str] | None:
    if labels is None:
        return None
    if not isinstance(labels, Mapping):
        raise CheckpointError(f"{str(path)!r}: its label_dict is a {type(labels).__name__}, expected a dict")
    return {int(index): str(label) for index, label in labels.items()}


# ------------------------------------------------------------------------------ writing
def save_checkpoint(model: BEATs, path: str | Path, *, label_dict: Mapping[int, str] | None = None) -> Path:
    """Write a model as an official checkpoint, atomically.

    The file is ``{"cfg": model.cfg.to_dict(), "model": state_dict}`` plus
    ``"label_dict"`` for a model with a classifier head: the official code loads it
    with ``BEATsConfig(ckpt["cfg"])`` and a strict ``load_state_dict``. It is
    written to a temporary file in the same folder and renamed into place, so a
    crash mid-write leaves an existing file intact.

    Args:
        model: the model (any device; tensors are written from the CPU).
        path: the ``.pt`` file to write; its folder is created if needed.
        label_dict: ``{class index: label}``; defaults to ``model.label_dict``.
            Only written for a model with a head.

    Returns:
        The path written.

    Raises:
        ConfigError: ``label_dict`` does not match the model's classes.
        OSError: the file cannot be written.
    """
    path = Path(path)
    labels = dict(label_dict) if label_dict is not None else model.label_dict
    copies: dict[int, torch.Tensor] = {}
    state = {}
    for key, tensor in model.state_dict().items():
        # The shared relative position table stays one tensor (as in official files).
        if tensor.data_ptr() not in copies:
            copies[tensor.data_ptr()] = tensor.detach().cpu()
        state[key] = copies[tensor.data_ptr()]
    checkpoint: dict[str, Any] = {"cfg": model.cfg.to_dict(), "model": state}
    if model.predictor is not None and labels is not None:
        classes = model.predictor.out_features
        if sorted(labels) != list(range(classes)) or not all(isinstance(v, str) for v in labels.values()):
            raise ConfigError(
                f"label_dict must map every class index 0..{classes - 1} to a string label, "
                f"got {len(labels)} entries"
            )
        checkpoint["label_dict"] = {int(k): labels[k] for k in sorted(labels)}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates the file private to its owner
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path
