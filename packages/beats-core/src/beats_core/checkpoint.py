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

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from beats_core.atomic import atomic_path
from beats_core.errors import CheckpointError

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "ESPNET_FBANK_MEAN",
    "ESPNET_FBANK_STD",
    "checkpoint_filter_fn",
    "read_checkpoint",
    "write_checkpoint",
]

logger = logging.getLogger(__name__)

#: File suffixes of checkpoint files: a string ending in one names a file, not a model.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
#: ESPnet's default fbank statistics for OpenBEATs (``espnet2/beats/utils.py``).
ESPNET_FBANK_MEAN = 15.2913
ESPNET_FBANK_STD = 5.90532

_ESPNET_MARKERS = ("patch_embedding_pad.weight", "raw2fbank_pad.weight")
_ESPNET_PREFIXES = ("encoder.patch_embedding.", "model.encoder.patch_embedding.")
_ESPNET_SPECIAL_TOKENS = ("<blank>", "<unk>")


# ------------------------------------------------------------------------------ reading
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file as plain data and return it in the official layout.

    Official checkpoints are returned as they are, with their state-dict keys
    passed through :func:`checkpoint_filter_fn` (so torch's
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


_POS_CONV = "encoder.pos_conv.0."
_TABLE = "self_attn.relative_attention_bias.weight"


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a BEATs state dict in any supported layout to the official key names.

    Handles, in this order:

    * ESPnet / OpenBEATs: a full ESPnet model nests BEATs under ``encoder.`` (and
      Lightning adds ``model.``); the classifier ``decoder.linear_out.*`` becomes
      ``predictor.*``. ESPnet's constant padding convolutions (``patch_embedding_pad``,
      ``raw2fbank_pad``) are dropped.
    * Weight norm: torch's parametrization names
      (``encoder.pos_conv.0.parametrizations.weight.original0/1``) become the
      official ``weight_g`` / ``weight_v``.
    * The relative position table: every layer gets layer 0's table (the official
      model shares it; files list it once per layer).

    Keys it does not know are kept, so a strict load reports them.

    Args:
        state_dict: parameter name -> tensor.

    Returns:
        A new dict with official key names.
    """
    state = dict(state_dict)
    if any(key.startswith("model.encoder.patch_embedding.") for key in state):
        state = {key.removeprefix("model."): value for key, value in state.items()}
    if "encoder.patch_embedding.weight" in state and "patch_embedding.weight" not in state:
        nested: dict[str, Tensor] = {}
        for key, value in state.items():
            if key.startswith("encoder."):
                nested[key.removeprefix("encoder.")] = value
            elif key.startswith("decoder.linear_out."):
                nested["predictor." + key.removeprefix("decoder.linear_out.")] = value
            else:
                nested[key] = value
        state = nested
    for key in _ESPNET_MARKERS:
        state.pop(key, None)
    renamed = {
        _POS_CONV + "parametrizations.weight.original0": _POS_CONV + "weight_g",
        _POS_CONV + "parametrizations.weight.original1": _POS_CONV + "weight_v",
    }
    state = {renamed.get(key, key): value for key, value in state.items()}
    table = state.get(f"encoder.layers.0.{_TABLE}")
    if table is not None:
        layers = {int(key.split(".")[2]) for key in state if key.startswith("encoder.layers.")}
        for index in sorted(layers - {0}):
            key = f"encoder.layers.{index}.{_TABLE}"
            other = state.get(key)
            if other is not None and other is not table and not torch.equal(other, table):
                logger.warning(
                    "%s differs from layer 0's table; layer 0's is used (the table is shared)", key
                )
            state[key] = table
    return state


# ------------------------------------------------------------------------------ writing
def write_checkpoint(path: str | Path, checkpoint: Mapping[str, Any]) -> Path:
    """Write a checkpoint dict with ``torch.save``, atomically.

    The file is written to a temporary file in the same folder and renamed into place,
    so a crash mid-write leaves an existing file intact. Tensors that share storage (the
    relative position table every layer lists) are written once, as in official files.

    Args:
        path: the ``.pt`` file to write; its folder is created if needed.
        checkpoint: ``{"cfg": dict, "model": state dict, ["label_dict": {int: str}]}``; tensors
            may be on any device (they are written from the CPU).

    Returns:
        The path written.

    Raises:
        OSError: the file cannot be written.
    """
    copies: dict[int, torch.Tensor] = {}
    state = {}
    for key, tensor in checkpoint["model"].items():
        if tensor.data_ptr() not in copies:
            copies[tensor.data_ptr()] = tensor.detach().cpu()
        state[key] = copies[tensor.data_ptr()]
    with atomic_path(path) as temporary, temporary.open("wb") as f:
        torch.save({**checkpoint, "model": state}, f)
    return Path(path)
