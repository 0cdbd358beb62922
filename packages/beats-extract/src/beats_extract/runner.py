"""Running BEATs on batches of windows: precision, layers, and what each row contributes.

:class:`ModelRunner` takes a padded batch of windows (rows of :mod:`beats_extract.loading`),
runs the model in inference mode in the chosen precision, takes the chosen hidden states, and
reduces every row to what it contributes to its clip: the pooled vector over the time steps the
row keeps and their token count (pooled output), or the kept time steps themselves (frame-level
output). The padding of a batch is masked on the token grid
(:func:`~beats_extract.framing.aligned_padding_mask`), so every row gives exactly what it
gives alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from beats_core.devices import resolve_device, resolve_dtype
from beats_core.errors import AudioDecodeError, ConfigError
from beats_core.factory import create_model
from beats_core.geometry import num_time_steps, step_samples
from beats_core.model import BEATs
from beats_core.registry import DEFAULT_MODEL
from beats_extract.accumulators import ClipFeatures, FrameEmbeddings, RecordingAccumulator
from beats_extract.framing import aligned_padding_mask
from beats_extract.loading import Cutting, DecodedBatch, Row
from beats_extract.onnx_model import OnnxModel
from beats_extract.poolings import Pooling

__all__ = [
    "LayerSelection",
    "ModelRunner",
    "OnnxRunner",
    "RowOutput",
    "open_runner",
    "resolve_layers",
    "run_batches",
]

logger = logging.getLogger(__name__)

#: ``layer=``: one hidden state (index), several (concatenated), or ``"all"`` (stacked).
LayerSelection = int | Sequence[int] | Literal["all"]
#: What a row contributes: ``(value, weight)``. Pooled: the pooled vector and its number of kept
#: tokens. Frame-level: the kept steps ``(T, ...)`` and the index of the first on the clip's grid.
#: A weight of -1: the row contributes nothing.
RowOutput = tuple[np.ndarray, int]


class ModelRunner:
    """Runs a BEATs model on padded windows and reduces each row.

    Args:
        model: the model (used as is, on its device).
        pooling: how a row's kept tokens become one vector, or ``None`` for frame-level output.
        layers: indices into the L + 1 hidden states (see :func:`resolve_layers`).
        stacked: stack the layers on an axis of their own instead of concatenating them.
        dtype: the precision to run in: float32 plainly, bfloat16/float16 under autocast.
    """

    def __init__(
        self, model: BEATs, *, pooling: Pooling | None, layers: list[int], stacked: bool, dtype: torch.dtype
    ) -> None:
        self.model = model
        self.pooling = pooling
        self.layers = layers
        self.stacked = stacked
        self.dtype = dtype

    @property
    def device(self) -> torch.device:
        """Where the model is, hence where it runs."""
        return self.model.patch_embedding.weight.device

    @property
    def patch_size(self) -> int:
        """``BEATsConfig.input_patch_size`` of the model."""
        return self.model.cfg.input_patch_size

    @property
    def width(self) -> int:
        """C, the width of the model's hidden states."""
        return self.model.embed_dim

    @property
    def num_layers(self) -> int:
        """L, the model's transformer layers (hidden states 0 ... L)."""
        return len(self.model.encoder.layers)

    @property
    def precision(self) -> str:
        """The precision the model runs in: ``"float32"``, ``"bfloat16"`` or ``"float16"``."""
        return str(self.dtype).removeprefix("torch.")

    def fingerprints(self) -> dict[str, str | None]:
        """What identifies the weights: the checkpoint file's SHA-256 and the encoder's fingerprint.

        Returns:
            ``model_sha256`` (None for a model built in memory) and ``encoder_sha256``
            (:func:`beats_core.factory.encoder_sha256`).
        """
        from beats_core.download import file_sha256
        from beats_core.factory import encoder_sha256

        path = self.model.checkpoint_path
        return {
            "model_sha256": None if path is None else file_sha256(path),
            "encoder_sha256": encoder_sha256(self.model),
        }

    def run(self, waveforms: torch.Tensor, rows: list[Row]) -> list[RowOutput]:
        """Run the model on ``(R, N)`` windows and reduce each row (see :data:`RowOutput`).

        Args:
            waveforms: float32 ``(R, N)`` zero-padded windows at 16 kHz.
            rows: what each row is (its length and the steps it keeps).

        Returns:
            One output per row, in order.
        """
        lengths = [row.window.length for row in rows]
        sample_mask, _ = aligned_padding_mask(lengths, waveforms.shape[1], self.patch_size)
        model, per_step = self.model, self.model.num_frequency_patches
        training = model.training
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype != torch.float32
            else nullcontext()
        )
        try:
            model.eval()
            with torch.inference_mode(), autocast, model.in_place_inference():
                source = waveforms.to(self.device, non_blocking=True)
                mask = None if sample_mask is None else sample_mask.to(self.device)
                if self.stacked or self.layers != [len(model.encoder.layers)]:
                    hidden, _ = model.extract_hidden_states(source, mask)
                    layers = [hidden[i] for i in self.layers]
                else:
                    features, _ = model.forward_features(source, mask)
                    layers = [features]
                steps = layers[0].shape[1] // per_step
                kept = [
                    row.window.kept_steps(min(num_time_steps(n, self.patch_size), steps))
                    for row, n in zip(rows, lengths, strict=True)
                ]
                if self.pooling is not None:
                    pooled = self._pool(self.pooling, layers, kept, per_step)
                    return [
                        (pooled[r], (stop - first) * per_step if stop > first else -1)
                        for r, (first, stop) in enumerate(kept)
                    ]
                frames = [layer.float().unflatten(1, (steps, per_step)).mean(dim=2) for layer in layers]
                joined = (
                    (torch.stack(frames, dim=2) if self.stacked else torch.cat(frames, dim=-1)).cpu().numpy()
                )
        finally:
            model.train(training)
        step = step_samples(self.patch_size)
        return [
            (
                joined[r, first:stop],
                (row.window.start - row.clip.start) // step + first if stop > first else -1,
            )
            for r, (row, (first, stop)) in enumerate(zip(rows, kept, strict=True))
        ]

    def _pool(
        self, pooling: Pooling, layers: list[torch.Tensor], kept: list[tuple[int, int]], per_step: int
    ) -> np.ndarray:
        """Pool each layer over each row's kept tokens; ``(R, *feature_shape)``."""
        num_tokens = layers[0].shape[1]
        device = layers[0].device
        step_of_token = torch.arange(num_tokens, device=device) // per_step
        first = torch.tensor([f for f, _ in kept], device=device).unsqueeze(1)
        stop = torch.tensor([s if s > f else f + 1 for f, s in kept], device=device).unsqueeze(1)
        pool_mask = (step_of_token < first) | (step_of_token >= stop)
        mask = pool_mask if bool(pool_mask.any()) else None
        pooled = [pooling(layer.float(), mask) for layer in layers]
        joined = torch.stack(pooled, dim=1) if self.stacked else torch.cat(pooled, dim=-1)
        return joined.float().cpu().numpy()


def resolve_layers(layer: LayerSelection, num_layers: int) -> tuple[list[int], bool]:
    """``layer`` -> (indices into the L + 1 hidden states, whether they are stacked).

    Args:
        layer: an index (0: the input of the first layer, i: the output of layer i, -1: the
            last), a list of them (concatenated), or ``"all"`` (stacked).
        num_layers: the model's number of transformer layers L.

    Returns:
        The indices and whether they are stacked.

    Raises:
        ConfigError: an index out of range or a value of the wrong type.
    """
    count = num_layers + 1
    described = (
        f"this model has {num_layers} layers, so hidden states 0 ... {num_layers} (0: the input of the first "
        f"layer, i: the output of layer i, -1: the last)"
    )

    def index(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"layer must be an int, a list of ints or 'all', got {value!r}; {described}")
        if not -count <= value < count:
            raise ConfigError(f"layer {value} is out of range: {described}")
        return int(value) % count

    if isinstance(layer, str):
        if layer != "all":
            raise ConfigError(f"layer must be an int, a list of ints or 'all', got {layer!r}")
        return list(range(count)), True
    if isinstance(layer, Sequence):
        if not layer:
            raise ConfigError(f"layer is an empty list; {described}")
        return [index(value) for value in layer], False
    return [index(layer)], False


class OnnxRunner:
    """Runs a model exported to ONNX (``beats export``) through onnxruntime, as :class:`ModelRunner` does.

    The graph pools each row itself (the pooling it was exported with, over the whole row), so
    every row must keep all its time steps: windows that follow each other (the default), or
    clips no longer than a window.

    Args:
        model: the :class:`~beats_extract.onnx_model.OnnxModel`: its rows, pooled embeddings or
            the class probabilities of an exported classifier, are what the runner gives.
        pooling: the extractor's pooling: the one the graph was exported with.

    Raises:
        ConfigError: the graph was exported with another pooling.
    """

    stacked = False
    dtype = torch.float32  # what an exported graph computes in, as far as its inputs and outputs go
    patch_size = 16
    device = torch.device("cpu")

    def __init__(self, model: Any, pooling: Pooling | None) -> None:
        meta = model.metadata
        if pooling is None or pooling.name != meta.pooling:
            asked = None if pooling is None else pooling.name
            raise ConfigError(
                f"{str(model.path)!r} was exported with pooling {meta.pooling!r}, not {asked!r}: use "
                f"pooling={meta.pooling!r}, or export again (`beats export MODEL --pooling ...`)"
            )
        self.model = model
        self.pooling = pooling
        self.width = meta.output_dim // pooling.output_dim(1)
        self.num_layers = int(meta.cfg.get("encoder_layers", 0))
        self.layers = [self.num_layers]
        self.precision = f"onnx-{'float32' if meta.quantize == 'none' else meta.quantize}"

    def fingerprints(self) -> dict[str, str | None]:
        """The SHA-256 of the ONNX file for both fingerprints: its embeddings are its own (int8 differs)."""
        from beats_core.download import file_sha256

        digest = file_sha256(self.model.path)
        return {"model_sha256": digest, "encoder_sha256": digest}

    def run(self, waveforms: torch.Tensor, rows: list[Row]) -> list[RowOutput]:
        """Run the graph on ``(R, N)`` windows; each row's pooled vector and its token count.

        Raises:
            ConfigError: a row keeps only part of its time steps (overlapping windows).
        """
        lengths = np.array([row.window.length for row in rows], dtype=np.int64)
        outputs = []
        for row, length in zip(rows, lengths, strict=True):
            steps = num_time_steps(int(length), self.patch_size)
            first, stop = row.window.kept_steps(steps)
            if (first, stop) != (0, steps):
                raise ConfigError(
                    "an ONNX model pools whole windows: use windows that follow each other (hop_seconds=None)"
                )
            outputs.append(steps * (128 // self.patch_size))
        pooled = self.model(waveforms.numpy(), lengths)
        return list(zip(pooled, outputs, strict=True))


def run_batches(
    runner: ModelRunner | OnnxRunner,
    batches: Iterable[DecodedBatch],
    *,
    cutting: Cutting,
    pooling: Pooling | None,
    batch_size: int,
    on_error: str,
) -> Iterator[tuple[int, np.ndarray | FrameEmbeddings | ClipFeatures | None, AudioDecodeError | None, float]]:
    """Run the model on decoded batches; yield ``(index, features, error, seconds)`` as recordings finish.

    Args:
        runner: what runs the model.
        batches: decoded units of :mod:`beats_extract.loading`, in order.
        cutting: how recordings were cut (the shortest window, the clip rule).
        pooling: the pooling, or ``None`` for frame-level output.
        batch_size: rows per run of the model.
        on_error: ``"raise"`` the first decoding error, or ``"skip"``: yield it with its recording.

    Yields:
        For each finished recording: its number, its features (or None), its error (or None) and
        the seconds of audio it held.

    Raises:
        AudioDecodeError: with ``on_error="raise"``, a recording that cannot be decoded.
    """
    recordings: dict[int, RecordingAccumulator] = {}
    errors: dict[int, AudioDecodeError] = {}
    for batch in batches:
        for index, error in batch.errors.items():
            if on_error == "raise":
                raise error
            errors[index] = error
            recordings.pop(index, None)
        keep = [k for k, row in enumerate(batch.rows) if row.index not in errors]
        for start in range(0, len(keep), batch_size):
            chunk = keep[start : start + batch_size]
            rows = [batch.rows[k] for k in chunk]
            longest = max(cutting.min_samples, *(row.window.length for row in rows))
            waveforms = batch.waveforms  # (R, N), padded to the longest row of the unit
            if len(chunk) < waveforms.shape[0] or longest < waveforms.shape[1]:  # type: ignore[union-attr]
                waveforms = waveforms[chunk, :longest]  # type: ignore[index]
            peaks = waveforms.abs().amax(dim=1).tolist()  # type: ignore[union-attr]
            outputs = runner.run(waveforms, rows)  # type: ignore[arg-type]
            for row, (value, weight), peak in zip(rows, outputs, peaks, strict=True):
                if weight >= 0:
                    recording = recordings.setdefault(
                        row.index,
                        RecordingAccumulator(
                            pooling, cutting.patch_size, cutting.clips.clip_seconds is not None
                        ),
                    )
                    recording.add(row.clip_number, row.clip, value, weight, peak)
        for index in batch.finished:
            if index in errors:
                yield index, None, errors.pop(index), 0.0
                continue
            recording = recordings.pop(index, None)
            if recording is None or not recording.clips:
                error = AudioDecodeError(f"no audio could be decoded from recording number {index}")
                if on_error == "raise":
                    raise error
                yield index, None, error, 0.0
                continue
            yield index, recording.result(), None, recording.seconds


def open_runner(
    model: str | os.PathLike[str] | BEATs | OnnxModel | None,
    *,
    pooling: Pooling | None,
    layer: LayerSelection,
    device: str | torch.device,
    dtype: str | torch.dtype | None,
) -> tuple[ModelRunner | OnnxRunner, str | None]:
    """The runner of a model, and the model's name, as :class:`~beats_extract.extractor.BEATsFeatureExtractor` takes it.

    Args:
        model: a spec for :func:`beats_core.create_model` (``None``: the default model), a
            ``BEATs`` (used as is), an ``.onnx`` file of embeddings exported by ``beats export``,
            or an :class:`~beats_extract.onnx_model.OnnxModel` (its rows as they are).
        pooling: the pooling (an ONNX graph must have been exported with it).
        layer: the hidden states (an ONNX graph gives the last layer only).
        device: where a BEATs model runs (``"auto"``: CUDA, then MPS, then the CPU; a ``BEATs``
            instance stays where it is); it is moved there.
        dtype: the precision of a BEATs model (see :func:`beats_core.devices.resolve_dtype`).

    Returns:
        The runner, and the model's name (None for a ``BEATs`` instance).

    Raises:
        ConfigError: an exported classifier given as a file, a layer an ONNX graph lacks, or a
            model of another type.
        CheckpointError: the model cannot be loaded.
    """
    onnx_file = isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx"
    if onnx_file or isinstance(model, OnnxModel):
        graph = model if isinstance(model, OnnxModel) else OnnxModel(model)
        if onnx_file and graph.metadata.kind != "embeddings":
            raise ConfigError(
                f"{os.fspath(model)!r} is an exported classifier (class probabilities); embed with the "
                "checkpoint or an export of the pre-trained model, or classify with `beats detect`"
            )
        if layer != -1:
            raise ConfigError(f"an ONNX model gives the last layer only, not layer={layer!r}")
        return OnnxRunner(graph, pooling), os.fspath(graph.path)
    name: str | None = None
    if isinstance(model, BEATs):
        target = resolve_device(device, model.patch_embedding.weight.device)
    elif model is None or isinstance(model, (str, os.PathLike)):
        name = os.fspath(DEFAULT_MODEL if model is None else model)
        target = resolve_device(device)
        model = create_model(name, map_location=target)
    else:
        raise ConfigError(
            "model must be a model name, a checkpoint path, an exported .onnx file or a BEATs "
            f"instance, got {type(model).__name__}"
        )
    if model.patch_embedding.weight.device != target:
        logger.info("moving the BEATs model to %s", target)
        model.to(target)
    layers, stacked = resolve_layers(layer, len(model.encoder.layers))
    runner = ModelRunner(
        model, pooling=pooling, layers=layers, stacked=stacked, dtype=resolve_dtype(dtype, target)
    )
    return runner, name
