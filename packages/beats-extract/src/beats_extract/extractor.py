"""BEATsFeatureExtractor: embeddings of audio files and arrays with a BEATs model.

The extractor decodes files in DataLoader workers (any format and sample rate
:func:`beats_core.audio.load_audio` reads) while the model runs, groups clips of similar
length into batches, and gives every clip exactly the embedding it would have alone: the
padding of a batch is masked on the token grid (:func:`beats_extract.framing.aligned_padding_mask`)
and poolings skip padded tokens. Recordings longer than a window are processed window by
window in bounded memory.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from beats_core.devices import resolve_device, resolve_dtype
from beats_core.errors import AudioDecodeError, ConfigError, InvalidAudioError
from beats_core.factory import create_model
from beats_core.geometry import num_time_steps, step_samples, step_timestamps
from beats_core.model import BEATs
from beats_extract.framing import aligned_padding_mask, hop_steps_for
from beats_extract.loading import DecodedBatch, Row, UnitDecoder, decode_units, plan_file_units, plan_units
from beats_extract.poolings import Pooling, PoolingFunction, get_pooling

__all__ = ["BEATsFeatureExtractor", "FileFeatures", "FrameEmbeddings", "SkippedFileWarning"]

logger = logging.getLogger(__name__)

#: ``layer=``: one hidden state (index), several (concatenated), or ``"all"`` (stacked).
LayerSelection = int | Sequence[int] | Literal["all"]
OnError = Literal["raise", "skip"]


class SkippedFileWarning(UserWarning):
    """A file could not be decoded and was skipped (``on_error="skip"``); the message names it and why."""


@dataclass(frozen=True)
class FrameEmbeddings:
    """The embeddings of a clip's time steps, with their timestamps.

    Attributes:
        embeddings: float32 ``(T, D)`` (``(T, L + 1, C)`` with ``layer="all"``): for each
            time step, the encoder's 8 tokens of that step averaged over frequency.
        timestamps: float64 ``(T,)``, seconds from the start of the clip: the centre of the
            samples the step's 16 fbank frames cover, ``0.16 k + 0.0875`` for step ``k``.
    """

    embeddings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class FileFeatures:
    """The result for one file of :meth:`BEATsFeatureExtractor.stream_from_files`.

    Attributes:
        index: the file's position in the input.
        path: the file, as given.
        features: float32 ``feature_shape`` array, or :class:`FrameEmbeddings` with
            ``pooling=None``; ``None`` when the file was skipped.
        error: why it was skipped, or ``None``.
    """

    index: int
    path: str
    features: np.ndarray | FrameEmbeddings | None
    error: AudioDecodeError | None = None


@dataclass
class _Pieces:
    """What the windows of one clip produced so far."""

    values: list[np.ndarray] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)  # pooled: kept tokens; frames: first global step


def _default_workers(device: torch.device) -> int:
    """The default number of decoding processes for a model on ``device``.

    With an accelerator, every core but one (at most 4); on the CPU, one per 4 cores, since
    the model already uses every core and decoding is a few per cent of its work (on 2
    cores a decoding process only competes with the model).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(4, cores // 4 if device.type == "cpu" else cores - 1))


class BEATsFeatureExtractor:
    """Embeddings of audio with a BEATs model: one vector per clip, or one per time step.

    ``layer=-1`` gives the encoder output, what ``BEATs.extract_features`` returns for a
    pre-trained model. For a fine-tuned checkpoint (a classifier) the features also come
    from the encoder, never from the class probabilities.

    Args:
        model: a registered model name (see ``beats models``; downloaded and cached on
            first use), the path of a checkpoint, or a :class:`~beats_core.model.BEATs`
            instance such as a fine-tuned backbone (used as is, not copied). ``None``: the
            default model, :data:`beats_core.registry.DEFAULT_MODEL`.
        pooling: how the tokens of a clip become one vector: a registered name
            (``"mean"``, ``"max"``, ``"first"``, ``"last"``, ``"meanstd"`` and those of
            plugins, see :func:`~beats_extract.poolings.list_poolings`), a callable
            ``pool(features (B, T, C), padding_mask (B, T) bool or None) -> (B, D)``, or
            ``None`` for frame-level output (:class:`FrameEmbeddings`).
        layer: which hidden states, as in ``BEATs.extract_hidden_states``: index 0 is
            the input of the first transformer layer, index ``i`` the output of layer
            ``i``, ``-1`` the last (the encoder output). A list concatenates the chosen
            ones along the feature axis; ``"all"`` stacks all ``L + 1`` of them, giving
            ``(L + 1, D)`` per clip (for probing and weighted sums).
        device: ``"auto"`` (for a name or path: CUDA, then MPS, then the CPU; for a
            ``BEATs`` instance: where it is), or a device. The model is moved there (an
            instance too; this is logged). Extraction runs wherever the model is.
        dtype: ``"auto"`` (bfloat16 where the device has it natively: a GPU that supports it,
            a CPU with AMX or AVX512-BF16; float32 elsewhere), ``None``/``"float32"``, or
            ``"bfloat16"`` / ``"float16"`` (or the torch dtypes) to run the model under
            autocast in that precision (see :mod:`beats_core.devices`).
        batch_size: clips (or windows) per forward pass.
        num_workers: processes decoding files while the model runs; default: on a GPU,
            one fewer than the cores available, at most 4; on the CPU, one per 4 cores.
            0 decodes in this process.
        window_seconds: recordings longer than this are processed in windows of this
            length and pooled over windows (BEATs was trained on 10 s clips, and memory
            stays bounded); ``None`` processes every clip whole.
        hop_seconds: the step between windows; rounded to the 0.16 s time-step grid.
            ``None``: windows follow each other (every 9.92 s for 10 s windows: the
            window's whole time steps, so no audio is skipped).

    Raises:
        ConfigError: an argument is invalid (the message names it and the valid values).
        CheckpointError: the model cannot be loaded or downloaded.

    Example::

        extractor = BEATsFeatureExtractor()
        extractor.get_feature_dim()                       # 768
        extractor.extract_from_file("audio.wav")          # (768,) float32
        extractor.extract_from_files(["a.wav", "b.mp3"])  # (2, 768) float32
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | BEATs | None = None,
        *,
        pooling: str | PoolingFunction | Pooling | None = "mean",
        layer: LayerSelection = -1,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = "auto",
        batch_size: int = 16,
        num_workers: int | None = None,
        window_seconds: float | None = 10.0,
        hop_seconds: float | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
            raise ConfigError(f"num_workers must be an int >= 0 or None, got {num_workers!r}")
        self.pooling: Pooling | None = None if pooling is None else get_pooling(pooling)
        self.batch_size = batch_size
        self.model_name: str | None
        if isinstance(model, BEATs):
            self.model, self.model_name = model, None
            target = resolve_device(device, model.patch_embedding.weight.device)
        elif model is None or isinstance(model, (str, os.PathLike)):
            from beats_core.registry import DEFAULT_MODEL

            self.model_name = os.fspath(DEFAULT_MODEL if model is None else model)
            target = resolve_device(device)
            self.model = create_model(self.model_name, map_location=target)
        else:
            raise ConfigError(
                f"model must be a model name, a checkpoint path or a BEATs instance, got {type(model).__name__}"
            )
        if self.device != target:
            logger.info("moving the BEATs model to %s", target)
            self.model.to(target)
        self.dtype = resolve_dtype(dtype, target)
        self.num_workers = _default_workers(target) if num_workers is None else num_workers
        self.layers, self.stacked = _resolve_layers(layer, self.num_layers)
        self._patch = self.model.cfg.input_patch_size
        self.window_samples = _window_samples(window_seconds, self.model.min_num_samples)
        self.hop_steps = hop_steps_for(
            self.window_samples if self.window_samples is not None else self.model.min_num_samples,
            hop_seconds if self.window_samples is not None else None,
            self._patch,
        )
        self._decoder = UnitDecoder(
            self.window_samples, self.hop_steps, self.model.min_num_samples, self._patch
        )

    # ------------------------------------------------------------------ description
    @property
    def device(self) -> torch.device:
        """Where the model is, hence where it runs (moving the model moves the extraction)."""
        return self.model.patch_embedding.weight.device

    @property
    def sample_rate(self) -> int:
        """The sample rate the model works at, in Hz (16000); input at other rates is resampled."""
        return 16000

    @property
    def num_layers(self) -> int:
        """Transformer layers L of the model (the hidden states are 0 ... L)."""
        return len(self.model.encoder.layers)

    def get_feature_dim(self) -> int:
        """Size of the last axis of the features.

        ``C`` (768 for the base model) times the pooling's ``output_multiplier`` (2 for
        ``meanstd``) times the number of layers of a list (not of ``"all"``, which stacks
        them on an axis of their own). With ``pooling=None``, the per-frame size.

        Returns:
            ``D``.
        """
        width = self.model.embed_dim
        per_layer = width if self.pooling is None else self.pooling.output_dim(width)
        return per_layer if self.stacked else per_layer * len(self.layers)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one clip's features: ``(D,)``, or ``(L + 1, D)`` with ``layer="all"``.

        Frame-level output (``pooling=None``) puts the time axis in front: ``(T, *feature_shape)``.
        """
        dim = self.get_feature_dim()
        return (len(self.layers), dim) if self.stacked else (dim,)

    def __repr__(self) -> str:
        pooling = None if self.pooling is None else self.pooling.name
        layer = "all" if self.stacked else self.layers
        return (
            f"BEATsFeatureExtractor(model={self.model_name or 'BEATs instance'!r}, pooling={pooling!r}, "
            f"layer={layer!r}, device={str(self.device)!r}, feature_shape={self.feature_shape})"
        )

    # ------------------------------------------------------------------ files
    def extract_from_file(self, path: str | os.PathLike[str]) -> np.ndarray | FrameEmbeddings:
        """Features of one audio file.

        Args:
            path: an audio file in any format :func:`beats_core.audio.load_audio` reads,
                at any sample rate; multichannel audio is averaged.

        Returns:
            float32 :attr:`feature_shape` array, or :class:`FrameEmbeddings` with ``pooling=None``.

        Raises:
            AudioDecodeError: the file cannot be decoded (the message names it and why).
        """
        (result,) = self.stream_from_files([path], num_workers=0, progress=False)
        return result.features  # type: ignore[return-value]

    def extract_from_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        on_error: OnError = "raise",
        progress: bool | None = None,
    ) -> np.ndarray | list[FrameEmbeddings | None]:
        """Features of many audio files, in input order.

        Files of any mix of lengths, formats and sample rates; they are decoded in worker
        processes while the model runs and batched by length (from their headers).

        Args:
            paths: the audio files.
            on_error: ``"raise"`` stops at the first file that cannot be decoded and raises
                its :class:`~beats_core.errors.AudioDecodeError`; ``"skip"`` gives it a
                row of NaN (``None`` with ``pooling=None``) and a :class:`SkippedFileWarning`
                naming it.
            progress: show a progress bar (tqdm, on stderr); default: when there are more
                files than one batch.

        Returns:
            float32 ``(len(paths), *feature_shape)``, or with ``pooling=None`` a list of
            :class:`FrameEmbeddings` (``None`` for skipped files).

        Raises:
            AudioDecodeError: with ``on_error="raise"``, a file cannot be decoded.
            ConfigError: ``paths`` is a single string, or ``on_error`` is invalid.
        """
        if isinstance(paths, (str, os.PathLike)):
            raise ConfigError("extract_from_files takes a list of paths; use extract_from_file for one file")
        paths = list(paths)
        results = self.stream_from_files(paths, on_error=on_error, progress=progress)
        if self.pooling is None:
            return [result.features for result in results]  # type: ignore[misc]
        features = np.full((len(paths), *self.feature_shape), np.nan, dtype=np.float32)
        for result in results:
            if result.features is not None:
                features[result.index] = result.features
        return features

    def stream_from_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_error: OnError = "raise",
        progress: bool | None = None,
        num_workers: int | None = None,
    ) -> Iterator[FileFeatures]:
        """Features of audio files, yielded one file at a time in input order.

        For collections too large to hold: ``paths`` is consumed lazily (a chunk of
        ``32 * batch_size`` files is planned at a time) and each result is yielded as soon
        as it and all before it are done, so memory stays bounded whatever the number of files.

        Args:
            paths: the audio files (any iterable, e.g. a generator).
            on_error: ``"raise"`` or ``"skip"``, as in :meth:`extract_from_files`; a skipped
                file is yielded with ``features=None`` and its ``error``.
            progress: show a progress bar; default: when the input has a length greater
                than one batch.
            num_workers: decoding processes for this call (default :attr:`num_workers`).

        Yields:
            :class:`FileFeatures`, in input order.

        Raises:
            AudioDecodeError: with ``on_error="raise"``, a file cannot be decoded.
            ConfigError: ``on_error`` is invalid.
        """
        from tqdm.auto import tqdm

        _check_on_error(on_error)
        total = len(paths) if isinstance(paths, Sequence) else None
        if progress is None:
            progress = total is None or total > self.batch_size
        names: dict[int, str] = {}

        def tracked() -> Iterator[str]:
            for index, path in enumerate(paths):
                names[index] = os.fspath(path)
                yield names[index]

        units = plan_file_units(
            tracked(),
            batch_size=self.batch_size,
            window_samples=self.window_samples,
            hop_steps=self.hop_steps,
            patch_size=self._patch,
        )
        workers = self.num_workers if num_workers is None else num_workers
        if total is not None:
            workers = min(workers, max(0, total - 1))
        batches = decode_units(units, self._decoder, workers)
        with tqdm(total=total, unit="file", desc="BEATs features", disable=not progress) as bar:
            for index, features, error in _in_order(self._results(batches, on_error)):
                if error is not None:
                    warnings.warn(f"skipped: {error}", SkippedFileWarning, stacklevel=2)
                bar.update(1)
                yield FileFeatures(index, names.pop(index), features, error)

    # ------------------------------------------------------------------ arrays
    def extract_from_array(
        self, waveform: np.ndarray | torch.Tensor, sample_rate: int = 16000
    ) -> np.ndarray | FrameEmbeddings:
        """Features of one waveform in memory.

        Args:
            waveform: float samples in [-1, 1], ``(samples,)`` or ``(channels, samples)``
                (channels are averaged); numpy or torch, on any device.
            sample_rate: its rate in Hz; resampled to 16 kHz if different.

        Returns:
            float32 :attr:`feature_shape` array, or :class:`FrameEmbeddings` with ``pooling=None``.

        Raises:
            InvalidAudioError: the waveform is empty, not float, has NaN or infinite
                samples, or more than 2 dimensions.
        """
        return self._extract_arrays([waveform], sample_rate, channels=True)[0]

    def extract_from_arrays(
        self,
        waveforms: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
        sample_rate: int = 16000,
    ) -> np.ndarray | list[FrameEmbeddings]:
        """Features of several mono waveforms in memory, of any lengths.

        Args:
            waveforms: a sequence of 1-D float waveforms, or a 2-D array/tensor whose rows
                are the clips (e.g. a batch of equal-length clips).
            sample_rate: their rate in Hz; resampled to 16 kHz if different.

        Returns:
            float32 ``(n, *feature_shape)``, or a list of :class:`FrameEmbeddings` with ``pooling=None``.

        Raises:
            InvalidAudioError: a waveform is empty, not 1-D, not float, or has NaN or infinite samples.
        """
        if isinstance(waveforms, (np.ndarray, torch.Tensor)) and waveforms.ndim != 2:
            raise InvalidAudioError(
                f"extract_from_arrays takes a (clips, samples) array or a list of 1-D waveforms, got shape "
                f"{tuple(waveforms.shape)}; use extract_from_array for one clip"
            )
        results = self._extract_arrays(list(waveforms), sample_rate)
        if self.pooling is None:
            return results  # type: ignore[return-value]
        if not results:
            return np.zeros((0, *self.feature_shape), dtype=np.float32)
        return np.stack(results)  # type: ignore[arg-type]

    def _extract_arrays(
        self, waveforms: list[np.ndarray | torch.Tensor], sample_rate: int, channels: bool = False
    ) -> list[np.ndarray | FrameEmbeddings]:
        if (
            isinstance(sample_rate, bool)
            or not isinstance(sample_rate, (int, np.integer))
            or sample_rate <= 0
        ):
            raise InvalidAudioError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
        clips = [_as_waveform(w, int(sample_rate), i, channels) for i, w in enumerate(waveforms)]
        units = plan_units(
            [(i, clip, clip.shape[0]) for i, clip in enumerate(clips)],
            batch_size=self.batch_size,
            window_samples=self.window_samples,
            hop_steps=self.hop_steps,
            patch_size=self._patch,
        )
        results: list[np.ndarray | FrameEmbeddings] = [None] * len(clips)  # type: ignore[list-item]
        for index, features, _ in self._results(decode_units(units, self._decoder, 0), "raise"):
            results[index] = features  # type: ignore[assignment]
        return results

    # ------------------------------------------------------------------ the model
    def _results(
        self, batches: Iterable[DecodedBatch], on_error: OnError
    ) -> Iterator[tuple[int, np.ndarray | FrameEmbeddings | None, AudioDecodeError | None]]:
        """Run the model on decoded batches; yield ``(index, features, error)`` as clips finish."""
        pieces: dict[int, _Pieces] = {}
        errors: dict[int, AudioDecodeError] = {}
        for batch in batches:
            for index, error in batch.errors.items():
                if on_error == "raise":
                    raise error
                errors[index] = error
                pieces.pop(index, None)
            keep = [k for k, row in enumerate(batch.rows) if row.index not in errors]
            for start in range(0, len(keep), self.batch_size):
                chunk = keep[start : start + self.batch_size]
                rows = [batch.rows[k] for k in chunk]
                longest = max(self.model.min_num_samples, *(row.window.length for row in rows))
                waveforms = batch.waveforms  # (R, N), padded to the longest row of the unit
                if len(chunk) < waveforms.shape[0] or longest < waveforms.shape[1]:  # type: ignore[union-attr]
                    waveforms = waveforms[chunk, :longest]  # type: ignore[index]
                for row, (value, weight) in zip(rows, self._embed(waveforms, rows), strict=True):
                    if weight >= 0:
                        clip = pieces.setdefault(row.index, _Pieces())
                        clip.values.append(value)
                        clip.weights.append(weight)
            for index in batch.finished:
                if index in errors:
                    yield index, None, errors.pop(index)
                    continue
                clip = pieces.pop(index, None)
                if clip is None or not clip.values:
                    error = AudioDecodeError(f"no audio could be decoded from clip {index}")
                    if on_error == "raise":
                        raise error
                    yield index, None, error
                    continue
                yield index, self._finish(clip), None

    def _embed(self, waveforms: torch.Tensor, rows: list[Row]) -> list[tuple[np.ndarray, int]]:
        """Run the model on ``(R, N)`` windows; per row, a value and a weight.

        Pooled: the pooled vector and its count of kept tokens. Frame-level: the kept
        frames and the grid index of the first. Weight -1: the row contributes nothing.
        """
        lengths = [row.window.length for row in rows]
        sample_mask, token_mask = aligned_padding_mask(lengths, waveforms.shape[1], self._patch)
        per_step = self.model.num_frequency_patches
        model = self.model
        training = model.training
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype != torch.float32
            else nullcontext()
        )
        try:
            model.eval()
            with torch.inference_mode(), autocast:
                source = waveforms.to(self.device, non_blocking=True)
                mask = None if sample_mask is None else sample_mask.to(self.device)
                if self.stacked or self.layers != [self.num_layers]:
                    hidden, returned = model.extract_hidden_states(source, mask)
                    layers = [hidden[i] for i in self.layers]
                else:
                    features, returned = model.forward_features(source, mask)
                    layers = [features]
                _check_token_mask(returned, token_mask)
                steps = layers[0].shape[1] // per_step
                kept = [
                    row.window.kept_steps(min(num_time_steps(n, self._patch), steps))
                    for row, n in zip(rows, lengths, strict=True)
                ]
                if self.pooling is not None:
                    outputs = self._pool(self.pooling, layers, kept, per_step)
                    return [
                        (outputs[r], (stop - first) * per_step if stop > first else -1)
                        for r, (first, stop) in enumerate(kept)
                    ]
                frames = [layer.float().unflatten(1, (steps, per_step)).mean(dim=2) for layer in layers]
                stacked = (
                    (torch.stack(frames, dim=2) if self.stacked else torch.cat(frames, dim=-1)).cpu().numpy()
                )
        finally:
            model.train(training)
        step = step_samples(self._patch)
        return [
            (stacked[r, first:stop], row.window.start // step + first if stop > first else -1)
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

    def _finish(self, clip: _Pieces) -> np.ndarray | FrameEmbeddings:
        if self.pooling is None:
            timestamps = np.concatenate(
                [
                    step_timestamps(len(value), first, self._patch)
                    for value, first in zip(clip.values, clip.weights, strict=True)
                ]
            )
            return FrameEmbeddings(np.concatenate(clip.values).astype(np.float32, copy=False), timestamps)
        if len(clip.values) == 1:
            return clip.values[0]
        combined = self.pooling.combine_windows(np.stack(clip.values), np.asarray(clip.weights))
        return np.asarray(combined, dtype=np.float32)


# --------------------------------------------------------------------------- helpers
def _resolve_layers(layer: LayerSelection, num_layers: int) -> tuple[list[int], bool]:
    """``layer`` -> (indices into the L + 1 hidden states, whether they are stacked)."""
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


def _window_samples(window_seconds: float | None, min_samples: int) -> int | None:
    if window_seconds is None:
        return None
    if (
        isinstance(window_seconds, bool)
        or not isinstance(window_seconds, (int, float))
        or not math.isfinite(window_seconds)
    ):
        raise ConfigError(f"window_seconds must be a number of seconds or None, got {window_seconds!r}")
    samples = round(window_seconds * 16000)
    if samples < min_samples:
        raise ConfigError(
            f"window_seconds={window_seconds:g} is shorter than one BEATs patch ({min_samples / 16000:g} s); "
            "use at least that, ideally 10 s (the clip length BEATs was trained on)"
        )
    return samples


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _check_token_mask(returned: torch.Tensor | None, expected: torch.Tensor | None) -> None:
    if expected is None:
        return
    if returned is None or not torch.equal(returned.cpu(), expected):
        raise RuntimeError(
            "the model's token padding mask differs from the aligned one beats-extract built; "
            "beats_core.model.downsample_padding_mask has changed and beats_extract.framing must follow"
        )


def _as_waveform(
    waveform: np.ndarray | torch.Tensor, sample_rate: int, position: int, channels: bool
) -> torch.Tensor:
    """A checked float32 CPU waveform ``(samples,)`` at 16 kHz; ``channels``: average a ``(channels, samples)`` one."""
    from beats_core.audio import resample

    where = f"waveform {position}"
    if isinstance(waveform, torch.Tensor):
        tensor = waveform.detach().cpu()
    elif isinstance(waveform, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(waveform))
    else:
        raise InvalidAudioError(
            f"{where} is a {type(waveform).__name__}; pass a numpy array or a torch tensor"
        )
    if not tensor.is_floating_point():
        raise InvalidAudioError(
            f"{where} has dtype {tensor.dtype}; pass float samples in [-1, 1] (integer PCM: x / 32768)"
        )
    if channels and tensor.ndim == 2:
        tensor = tensor.mean(dim=0)
    if tensor.ndim != 1:
        expected = "(samples,) or (channels, samples)" if channels else "1-D (samples,)"
        raise InvalidAudioError(f"{where} must be {expected}, got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise InvalidAudioError(f"{where} is empty")
    if not bool(torch.isfinite(tensor).all()):
        raise InvalidAudioError(f"{where} has NaN or infinite samples")
    tensor = tensor.float()
    if sample_rate != 16000:
        tensor = resample(tensor, sample_rate, 16000)
    return tensor.contiguous()


def _in_order(
    results: Iterator[tuple[int, np.ndarray | FrameEmbeddings | None, AudioDecodeError | None]],
) -> Iterator[tuple[int, np.ndarray | FrameEmbeddings | None, AudioDecodeError | None]]:
    """Re-order results that finish out of order (indices 0, 1, 2, ...) into input order."""
    done: dict[int, tuple[np.ndarray | FrameEmbeddings | None, AudioDecodeError | None]] = {}
    following = 0
    for index, features, error in results:
        done[index] = (features, error)
        while following in done:
            features, error = done.pop(following)
            yield following, features, error
            following += 1
