"""Export a BEATs model to ONNX, in float32 or int8, for CPUs and runtimes without torch.

The exported graph does everything between the waveform and the answer: the Kaldi fbank,
the patch embedding, the transformer and the pooling. It takes

* ``waveforms``: float32 ``(B, N)``, samples in [-1, 1] at 16 kHz, each row zero-padded
  at the end to the longest (N >= :attr:`~beats_extract.onnx_model.OnnxMetadata.min_samples`);
* ``lengths``: int64 ``(B,)``, the samples of each row before padding;

and returns ``output``: float32 ``(B, D)`` pooled embeddings for a pre-trained model, or
``(B, K)`` class probabilities for a fine-tuned one (what ``beats detect`` gives for a clip:
the official sigmoid of the mean token logits, or for a checkpoint of beats-train its
softmax and layer mix). Batch size and length are dynamic. Padding is masked on the time-step grid, as
:class:`~beats_extract.extractor.BEATsFeatureExtractor` masks it, so a padded row gives what
its clip alone gives. The graph attends over the whole input: a recording longer than the
extractor's window (10 s) gives what ``BEATsFeatureExtractor(window_seconds=None)`` gives.

``quantize="int8"`` applies onnxruntime's dynamic quantization to the products of the
activations with the transformer's weights (int8 weights, activations quantized per
call); the fbank and the attention stay float32. The labels, the model's provenance and
the settings travel in the file's metadata (:class:`~beats_extract.onnx_model.OnnxMetadata`);
:class:`~beats_extract.onnx_model.OnnxModel` runs the file.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from beats_core.atomic import atomic_path
from beats_core.errors import BeatsError, CheckpointError, ConfigError, MissingDependencyError
from beats_core.factory import create_model
from beats_core.geometry import FRAME_LENGTH, FRAME_SHIFT, SAMPLE_RATE
from beats_core.model import BEATs
from beats_extract.__about__ import __version__
from beats_extract.classify import ClipClassifier
from beats_extract.onnx_model import OnnxMetadata, OnnxModel, import_onnxruntime
from beats_extract.poolings import Pooling, get_pooling

__all__ = [
    "QUANTIZATIONS",
    "ExportError",
    "ExportedForward",
    "export_onnx",
    "quantize_onnx",
    "time_steps_of_lengths",
]

#: The ``quantize`` values :func:`export_onnx` takes (``None`` for float32).
QUANTIZATIONS = ("int8",)
#: The lowest opset the graph can be written in (the exporter's own minimum).
MIN_OPSET = 18
# The float32 graph must give the torch model's output within this (the tests check 1e-4).
_TOLERANCE = 1e-3
_INSTALL = "pip install 'beats-extract[onnx]'"


class ExportError(BeatsError, RuntimeError):
    """A model could not be exported to ONNX, or the exported graph does not compute what the model does."""


def time_steps_of_lengths(lengths: Tensor, patch_size: int) -> Tensor:
    """The time steps of clips of the given lengths, as a tensor computation that traces.

    The tensor form of :func:`beats_core.geometry.num_time_steps`: ``max(1,
    num_fbank_frames(n) // patch_size)`` for each length n.

    Args:
        lengths: int64 ``(B,)`` lengths in samples at 16 kHz.
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        int64 ``(B,)``, at least 1.
    """
    frames = torch.where(lengths >= FRAME_LENGTH, (lengths - FRAME_LENGTH) // FRAME_SHIFT + 1, 0)
    return (frames // patch_size).clamp(min=1)


class ExportedForward(nn.Module):
    """What the exported graph computes: ``(waveforms (B, N), lengths (B,)) -> (B, D or K)``.

    A fine-tuned model gives what :class:`~beats_extract.classify.ClipClassifier` gives for a
    clip: the head on the mean of the tokens (of the layer mix of a checkpoint trained with
    ``weighted_layer_sum``), then independent sigmoids (the official output) or beats-train's
    softmax of a single-label model.

    Args:
        model: the BEATs model (its own eval/train state is used: export it in eval mode).
        pooling: how a pre-trained model's tokens become one vector; ignored with a head.
    """

    def __init__(self, model: BEATs, pooling: Pooling) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.activation = "none"
        self.layer_weights: Tensor | None = None
        if model.predictor is not None:
            classifier = ClipClassifier(model)
            self.activation = "sigmoid" if classifier.multi_label else "softmax"
            if classifier.layer_weights is not None:
                self.layer_weights = torch.from_numpy(classifier.layer_weights)

    def forward(self, waveforms: Tensor, lengths: Tensor) -> Tensor:
        """Embeddings (B, D) or class probabilities (B, K) of a padded batch.

        Args:
            waveforms: float32 (B, N), zero-padded rows at 16 kHz.
            lengths: int64 (B,), samples of each row before padding.

        Returns:
            float32 (B, D) or (B, K).
        """
        num_steps = time_steps_of_lengths(lengths, self.model.cfg.input_patch_size)
        hidden: list[Tensor] | None = None if self.layer_weights is None else []
        features, token_mask = self.model.forward_features_aligned(waveforms, num_steps, hidden)
        if self.model.predictor is None:
            return self.pooling(features, token_mask)
        if hidden is None:
            logits = self.model.forward_head(features, token_mask)
        else:
            pooled = torch.stack(
                [self.model.forward_head(h, token_mask, pre_logits=True) for h in hidden], dim=1
            )
            logits = self.model.predictor(torch.tensordot(pooled, self.layer_weights, dims=([1], [0])))
        return torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=-1)


def export_onnx(
    model: BEATs | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    pooling: str = "mean",
    opset: int | None = None,
    progress: bool = False,
) -> Path:
    """Export a BEATs model to an ONNX file that runs with onnxruntime alone.

    The graph is described in the module docstring. The float32 graph is checked against
    the torch model on a padded test batch before anything is written.

    Args:
        model: a model, or a spec for :func:`beats_core.create_model` (a registered name, a
            checkpoint file, ``hf-hub:owner/name`` or ``random:SIZE``). A model is not
            changed (it is copied to the CPU in float32 if it is elsewhere).
        path: the ``.onnx`` file to write (atomically; its folder is created).
        quantize: ``None`` for float32, ``"int8"`` for onnxruntime's dynamic quantization
            of the weight products (about 4x smaller, faster on CPUs with int8 dot products).
        pooling: for a pre-trained model, how its tokens become one vector: a registered
            pooling (``mean``, ``max``, ``first``, ``last``, ``meanstd``). A fine-tuned model
            always returns the official probabilities (the mean of its token logits), so only
            ``"mean"`` is accepted for it.
        opset: the ONNX opset (default: the exporter's); at least 18.
        progress: show the steps (load, trace, check, quantize) in a progress bar; the
            trace takes from seconds (tiny) to minutes (large).

    Returns:
        The path written.

    Raises:
        MissingDependencyError: onnx, onnxscript or onnxruntime is not installed.
        ConfigError: an unknown quantization or pooling, a pooling other than mean for a
            fine-tuned model, or an opset below 18.
        CheckpointError: the model spec cannot be loaded.
        ExportError: the exporter failed, or the graph does not reproduce the model.
    """
    onnx = _import_exporter()
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(
            f"quantize must be None (float32) or one of {list(QUANTIZATIONS)}, got {quantize!r}"
        )
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET):
        raise ConfigError(f"opset must be an int of at least {MIN_OPSET}, got {opset!r}")
    steps = ["load", "trace", "check"] + (["quantize"] if quantize else [])
    bar = tqdm(total=len(steps), desc="export", unit="step", disable=not progress, leave=False)
    with bar:
        return _export(model, Path(path), quantize, pooling, opset, onnx, bar)


def _export(
    model: BEATs | str | os.PathLike[str],
    path: Path,
    quantize: str | None,
    pooling: str,
    opset: int | None,
    onnx: Any,
    bar: tqdm,
) -> Path:
    bar.set_postfix_str("load")
    spec = None if isinstance(model, BEATs) else str(model)
    source = model if isinstance(model, BEATs) else create_model(model)
    if source.predictor is not None and pooling != "mean":
        raise ConfigError(
            f"pooling={pooling!r}: a fine-tuned model returns the official class probabilities, the mean "
            "of its token logits; use pooling='mean', or remove the head (reset_classifier(0)) to export embeddings"
        )
    resolved = get_pooling(pooling)
    cpu_model = _on_cpu_in_float32(source)
    training = cpu_model.training
    forward = ExportedForward(cpu_model.eval(), resolved)
    try:
        waveforms, lengths = _probe_batch(cpu_model.min_num_samples)
        with torch.inference_mode():
            expected = forward(torch.from_numpy(waveforms), torch.from_numpy(lengths)).numpy()
        bar.update()
        bar.set_postfix_str("trace")
        proto = _trace(forward, waveforms, lengths, opset)
    finally:
        cpu_model.train(training)
    checkpoint = getattr(cpu_model, "checkpoint_path", None)
    metadata = OnnxMetadata(
        kind="embeddings" if cpu_model.predictor is None else "probabilities",
        output_dim=int(expected.shape[1]),
        labels=_labels(cpu_model),
        pooling=resolved.name,
        activation=forward.activation,
        sample_rate=SAMPLE_RATE,
        min_samples=cpu_model.min_num_samples,
        quantize="none",
        model=spec if spec is not None else str(checkpoint or "<BEATs instance>"),
        checkpoint_sha256=_sha256(checkpoint) if checkpoint is not None else "",
        cfg=cpu_model.cfg.to_dict(),
        version=__version__,
        exporter=f"torch {torch.__version__}",
        opset=_opset(proto),
    )
    _set_metadata(proto, metadata)
    bar.update()
    bar.set_postfix_str("check")
    with atomic_path(path) as temporary:
        onnx.save_model(proto, str(temporary))
        _check_graph(temporary, waveforms, lengths, expected, spec or "the model")
        bar.update()
        if quantize is not None:
            bar.set_postfix_str("quantize")
            quantize_onnx(temporary, temporary, quantize=quantize)
            bar.update()
    return path


def _import_exporter() -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as e:
        raise MissingDependencyError(f"exporting to ONNX needs onnx and onnxscript ({e}); {_INSTALL}") from e
    import_onnxruntime()
    return onnx


def _on_cpu_in_float32(model: BEATs) -> BEATs:
    weight = model.patch_embedding.weight
    if weight.device.type == "cpu" and weight.dtype == torch.float32:
        return model
    copied = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    copied.checkpoint_path = model.checkpoint_path
    return copied


def _probe_batch(min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """A padded batch of two generated clips (a chirp in noise, and a shorter one) to trace and check with."""
    rng = np.random.default_rng(0)
    num_samples = max(4 * min_samples, SAMPLE_RATE)
    time = np.arange(num_samples) / SAMPLE_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (300 + 900 * time) * time) + 0.05 * rng.standard_normal(num_samples)
    lengths = np.array([num_samples, num_samples // 2 + 123], dtype=np.int64)
    waveforms = np.zeros((2, num_samples), dtype=np.float32)
    waveforms[0] = chirp
    waveforms[1, : lengths[1]] = 0.5 * chirp[::-1][: lengths[1]]
    return waveforms, lengths


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress messages and its deprecation notices (a library does not print)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _trace(forward: ExportedForward, waveforms: np.ndarray, lengths: np.ndarray, opset: int | None) -> Any:
    auto = torch.export.Dim.AUTO
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                forward,
                (torch.from_numpy(waveforms), torch.from_numpy(lengths)),
                dynamo=True,
                dynamic_shapes={"waveforms": {0: auto, 1: auto}, "lengths": {0: auto}},
                input_names=["waveforms", "lengths"],
                output_names=["output"],
                opset_version=opset,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many kinds of errors
        raise ExportError(
            f"torch's ONNX exporter failed on the model (pooling {forward.pooling.name!r}): "
            f"{type(e).__name__}: {str(e)[:2000]}"
        ) from e
    return program.model_proto


def _opset(proto: Any) -> int:
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def _labels(model: BEATs) -> list[str] | None:
    if model.predictor is None or not model.label_dict:
        return None
    return [str(model.label_dict.get(index, index)) for index in range(model.predictor.out_features)]


def _sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _set_metadata(proto: Any, metadata: OnnxMetadata) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "beats-extract"
    proto.producer_version = __version__
    proto.doc_string = (
        f"BEATs {metadata.kind}: waveforms float32 (B, N) at {metadata.sample_rate} Hz, zero-padded, and "
        f"lengths int64 (B,) -> output float32 (B, {metadata.output_dim}). See the beats.* metadata."
    )


def _check_graph(
    path: Path, waveforms: np.ndarray, lengths: np.ndarray, expected: np.ndarray, name: str
) -> None:
    """Run the written float32 graph on the probe batch; it must give the torch model's output."""
    output = OnnxModel(path)(waveforms, lengths)
    difference = float(np.abs(output - expected).max()) if output.shape == expected.shape else float("inf")
    if not difference <= _TOLERANCE:
        raise ExportError(
            f"the ONNX graph of {name} does not reproduce the torch model: output {output.shape}, "
            f"largest difference {difference:.3g} (tolerance {_TOLERANCE}); nothing was written"
        )


def quantize_onnx(
    source: str | os.PathLike[str], path: str | os.PathLike[str], *, quantize: str = "int8"
) -> Path:
    """Quantize a float32 graph written by :func:`export_onnx`, keeping its metadata.

    ``"int8"`` is onnxruntime's dynamic quantization of the products of the activations with
    the model's weight matrices (``MatMul`` / ``Gemm`` with a constant weight: int8 weights,
    activations quantized on the fly, per tensor); the fbank, the attention and everything
    else stay float32.

    Args:
        source: a float32 ``.onnx`` file from :func:`export_onnx`.
        path: the file to write (atomically; may be ``source`` itself).
        quantize: the quantization, one of :data:`QUANTIZATIONS`.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: onnx or onnxruntime is not installed.
        ConfigError: an unknown quantization.
        CheckpointError: ``source`` is not a float32 graph exported by beats.
    """
    onnx = _import_exporter()
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize must be one of {list(QUANTIZATIONS)}, got {quantize!r}")
    metadata = OnnxModel(source).metadata
    if metadata.quantize != "none":
        raise CheckpointError(
            f"{str(source)!r} is already quantized ({metadata.quantize}); quantize the float32 export"
        )
    from onnxruntime.quantization import QuantType, quantize_dynamic

    metadata = replace(metadata, quantize=quantize)
    with atomic_path(path) as temporary:
        with _quiet_exporter():
            quantize_dynamic(
                Path(source), temporary, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
            )
        proto = onnx.load_model(str(temporary))
        _set_metadata(proto, metadata)
        onnx.save_model(proto, str(temporary))
    return Path(path)
