"""BEATsFeatureExtractor: embeddings of audio files and arrays with a BEATs model.

The extractor is a thin facade over three parts: :mod:`beats_extract.loading` plans the work
(recordings cut into clips by the one clip rule, clips into model windows) and decodes files in
DataLoader workers while the model runs; :class:`~beats_extract.runner.ModelRunner` runs the
model on padded batches of windows in the chosen precision and layers; the accumulators of
:mod:`beats_extract.accumulators` put each clip's windows back together. Every clip gets
exactly the embedding it would have alone: the padding of a batch is masked on the token grid
and poolings skip padded tokens. Recordings longer than a window are processed window by window
in bounded memory.

Without ``clip_seconds`` a recording gives one result (a vector, or its time steps); with it,
one result per clip of ``clip_seconds`` (:class:`ClipFeatures`), each clip embedded alone, as
if it were its own file.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from beats_core.clips import ClipRule
from beats_core.errors import AudioDecodeError, ConfigError, InvalidAudioError
from beats_core.geometry import SAMPLE_RATE, min_num_samples
from beats_core.model import BEATs
from beats_extract.accumulators import ClipFeatures, FrameEmbeddings
from beats_extract.loading import (
    Cutting,
    UnitDecoder,
    decode_units,
    plan_file_units,
    plan_units,
)
from beats_extract.onnx_model import OnnxModel
from beats_extract.poolings import Pooling, PoolingFunction, get_pooling
from beats_extract.runner import LayerSelection, ModelRunner, open_runner, run_batches

__all__ = [
    "BEATsFeatureExtractor",
    "ClipFeatures",
    "FileFeatures",
    "FrameEmbeddings",
    "LayerSelection",
    "SkippedFileWarning",
]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]


class SkippedFileWarning(UserWarning):
    """A file could not be decoded and was skipped (``on_error="skip"``); the message names it and why."""


#: What one recording gives: a vector, its time steps, or its clips.
Features = np.ndarray | FrameEmbeddings | ClipFeatures


@dataclass(frozen=True)
class FileFeatures:
    """The result for one file of :meth:`BEATsFeatureExtractor.stream_from_files`.

    Attributes:
        index: the file's position in the input.
        path: the file, as given.
        features: float32 ``feature_shape`` array, :class:`FrameEmbeddings` with
            ``pooling=None``, or :class:`ClipFeatures` with ``clip_seconds``; ``None`` when the
            file was skipped.
        error: why it was skipped, or ``None``.
        seconds: the duration of the audio it holds (what decoded), 0 when skipped.
    """

    index: int
    path: str
    features: Features | None
    error: AudioDecodeError | None = None
    seconds: float = 0.0

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The result as table rows: ``(starts, ends, features)``.

        One row for a recording's vector (from 0 to its end), one per clip, or one per time
        step with frame-level output (a step spans 175 ms around its timestamp).

        Returns:
            float64 ``(n,)`` starts and ends in seconds, and float32 ``(n, *shape)`` features
            (``n = 0`` for a skipped file).
        """
        features = self.features
        if features is None:
            return np.zeros(0), np.zeros(0), np.zeros((0, 0), dtype=np.float32)
        if isinstance(features, ClipFeatures):
            if isinstance(features.features, np.ndarray):
                return features.starts, features.ends, features.features
            parts = [_frame_rows(frames) for frames in features.features]
            return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]
        if isinstance(features, FrameEmbeddings):
            return _frame_rows(features)
        return np.zeros(1), np.array([self.seconds]), features[None]


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
    """Embeddings of audio with a BEATs model: one vector per recording or per clip, or one per time step.

    ``layer=-1`` gives the encoder output, what ``BEATs.extract_features`` returns for a
    pre-trained model. For a fine-tuned checkpoint (a classifier) the features also come
    from the encoder, never from the class probabilities.

    Args:
        model: a model spec for :func:`beats_core.create_model` (a registered name, downloaded
            and cached on first use; the path of a checkpoint; ``hf-hub:owner/name``), a
            :class:`~beats_core.model.BEATs` instance such as a fine-tuned backbone (used as is,
            not copied), or an ``.onnx`` file of embeddings exported by ``beats export`` (run by
            onnxruntime on the CPU: pooled output with the pooling it was exported with, the last
            layer, and windows that follow each other); an
            :class:`~beats_extract.onnx_model.OnnxModel` gives its rows as they are, embeddings or
            the class probabilities of an exported classifier. ``None``: the default model,
            :data:`beats_core.registry.DEFAULT_MODEL`.
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
        batch_size: windows per forward pass.
        num_workers: processes decoding files while the model runs; default: on a GPU,
            one fewer than the cores available, at most 4; on the CPU, one per 4 cores.
            0 decodes in this process.
        window_seconds: recordings (or clips) longer than this are processed in windows of this
            length and pooled over windows (BEATs was trained on 10 s clips, and memory
            stays bounded); ``None`` processes every clip whole.
        hop_seconds: the step between windows; rounded to the 0.16 s time-step grid.
            ``None``: windows follow each other (every 9.92 s for 10 s windows: the
            window's whole time steps, so no audio is skipped).
        clip_seconds: cut every recording into clips of this length (the one clip rule,
            :class:`beats_core.clips.ClipRule`) and give one result per clip
            (:class:`ClipFeatures`), each clip embedded alone; ``None``: one result per recording.
        clip_overlap: seconds shared by consecutive clips (``clip_seconds - clip_overlap``
            between clip starts).

    Raises:
        ConfigError: an argument is invalid (the message names it and the valid values).
        CheckpointError: the model cannot be loaded or downloaded.

    Example::

        extractor = BEATsFeatureExtractor()
        extractor.get_feature_dim()                       # 768
        extractor.extract_from_file("audio.wav")          # (768,) float32
        extractor.extract_from_files(["a.wav", "b.mp3"])  # (2, 768) float32
        BEATsFeatureExtractor(clip_seconds=5).extract_from_file("hour.flac")  # ClipFeatures, 720 rows
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | BEATs | OnnxModel | None = None,
        *,
        pooling: str | PoolingFunction | Pooling | None = "mean",
        layer: LayerSelection = -1,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = "auto",
        batch_size: int = 16,
        num_workers: int | None = None,
        window_seconds: float | None = 10.0,
        hop_seconds: float | None = None,
        clip_seconds: float | None = None,
        clip_overlap: float = 0.0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
            raise ConfigError(f"num_workers must be an int >= 0 or None, got {num_workers!r}")
        if window_seconds is not None and (
            isinstance(window_seconds, bool)
            or not isinstance(window_seconds, (int, float))
            or not math.isfinite(window_seconds)
        ):
            raise ConfigError(f"window_seconds must be a number of seconds or None, got {window_seconds!r}")
        self.pooling: Pooling | None = None if pooling is None else get_pooling(pooling)
        self.batch_size = batch_size
        self.runner, self.model_name = open_runner(
            model, pooling=self.pooling, layer=layer, device=device, dtype=dtype
        )
        self.num_workers = _default_workers(self.device) if num_workers is None else num_workers
        self.cutting = Cutting(
            clips=ClipRule(clip_seconds, clip_overlap),
            windows=ClipRule.windows(window_seconds, hop_seconds),
            patch_size=self.runner.patch_size,
        )
        self._decoder = UnitDecoder(self.cutting)

    # ------------------------------------------------------------------ description
    @property
    def model(self) -> BEATs | None:
        """The BEATs model it runs (None for an exported ONNX graph)."""
        return self.runner.model if isinstance(self.runner, ModelRunner) else None

    @property
    def dtype(self) -> torch.dtype:
        """The precision the model runs in (float32 for an exported ONNX graph)."""
        return self.runner.dtype

    @property
    def device(self) -> torch.device:
        """Where the model is, hence where it runs (moving the model moves the extraction)."""
        return self.runner.device

    @property
    def sample_rate(self) -> int:
        """The sample rate the model works at, in Hz (16000); input at other rates is resampled."""
        return SAMPLE_RATE

    @property
    def num_layers(self) -> int:
        """Transformer layers L of the model (the hidden states are 0 ... L)."""
        return self.runner.num_layers

    @property
    def layers(self) -> list[int]:
        """The hidden states taken (indices into 0 ... L)."""
        return self.runner.layers

    @property
    def stacked(self) -> bool:
        """Whether several layers are stacked on an axis of their own (``layer="all"``)."""
        return self.runner.stacked

    @property
    def clip_rule(self) -> ClipRule:
        """How recordings are cut into clips (``ClipRule()``: one clip, the whole recording)."""
        return self.cutting.clips

    @property
    def window_rule(self) -> ClipRule:
        """How a clip longer than a window is cut into the windows the model runs on."""
        return self.cutting.windows

    def get_feature_dim(self) -> int:
        """Size of the last axis of the features.

        ``C`` (768 for the base model) times the pooling's ``output_multiplier`` (2 for
        ``meanstd``) times the number of layers of a list (not of ``"all"``, which stacks
        them on an axis of their own). With ``pooling=None``, the per-frame size.

        Returns:
            ``D``.
        """
        width = self.runner.width
        per_layer = width if self.pooling is None else self.pooling.output_dim(width)
        return per_layer if self.stacked else per_layer * len(self.layers)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one clip's features: ``(D,)``, or ``(L + 1, D)`` with ``layer="all"``.

        Frame-level output (``pooling=None``) puts the time axis in front: ``(T, *feature_shape)``.
        """
        dim = self.get_feature_dim()
        return (len(self.layers), dim) if self.stacked else (dim,)

    def settings(self) -> dict[str, object]:
        """How this extractor embeds, as plain data: what a store or a features file records.

        Returns:
            ``model`` (the spec, or None for an instance), ``pooling``, ``layer``, the clip rule
            (``clip_seconds``, ``clip_overlap``), the windows (``window_seconds``, ``hop_seconds``),
            ``dtype`` and ``feature_shape``.
        """
        windows = self.window_rule
        return {
            "model": self.model_name,
            "pooling": None if self.pooling is None else self.pooling.name,
            "layer": "all" if self.stacked else self.layers,
            "clip_seconds": self.clip_rule.clip_seconds,
            "clip_overlap": self.clip_rule.overlap_seconds,
            "window_seconds": windows.clip_seconds,
            "hop_seconds": None if windows.hop_samples is None else windows.hop_samples / SAMPLE_RATE,
            "dtype": self.runner.precision,
            "feature_shape": list(self.feature_shape),
        }

    def __repr__(self) -> str:
        pooling = None if self.pooling is None else self.pooling.name
        layer = "all" if self.stacked else self.layers
        clips = (
            "" if self.clip_rule.clip_seconds is None else f", clip_seconds={self.clip_rule.clip_seconds:g}"
        )
        return (
            f"BEATsFeatureExtractor(model={self.model_name or 'BEATs instance'!r}, pooling={pooling!r}, "
            f"layer={layer!r}, device={str(self.device)!r}, dtype={self.settings()['dtype']!r}"
            f"{clips}, feature_shape={self.feature_shape})"
        )

    # ------------------------------------------------------------------ files
    def extract_from_file(self, path: str | os.PathLike[str]) -> Features:
        """Features of one audio file.

        Args:
            path: an audio file in any format :func:`beats_core.audio.load_audio` reads,
                at any sample rate; multichannel audio is averaged.

        Returns:
            float32 :attr:`feature_shape` array, :class:`FrameEmbeddings` with ``pooling=None``,
            or :class:`ClipFeatures` with ``clip_seconds``.

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
    ) -> np.ndarray | list[FrameEmbeddings | None] | ClipFeatures:
        """Features of many audio files, in input order.

        Files of any mix of lengths, formats and sample rates; they are decoded in worker
        processes while the model runs and batched by length (from their headers).

        Args:
            paths: the audio files.
            on_error: ``"raise"`` stops at the first file that cannot be decoded and raises
                its :class:`~beats_core.errors.AudioDecodeError`; ``"skip"`` gives it a
                row of NaN (``None`` with ``pooling=None``; no rows with ``clip_seconds``) and a
                :class:`SkippedFileWarning` naming it.
            progress: show a progress bar in seconds of audio (tqdm, on stderr); default: when
                there are more files than one batch.

        Returns:
            float32 ``(len(paths), *feature_shape)``, or with ``pooling=None`` a list of
            :class:`FrameEmbeddings` (``None`` for skipped files), or with ``clip_seconds`` the
            :class:`ClipFeatures` of every clip of every file, in order.

        Raises:
            AudioDecodeError: with ``on_error="raise"``, a file cannot be decoded.
            ConfigError: ``paths`` is a single string, or ``on_error`` is invalid.
        """
        if isinstance(paths, (str, os.PathLike)):
            raise ConfigError("extract_from_files takes a list of paths; use extract_from_file for one file")
        paths = list(paths)
        results = self.stream_from_files(paths, on_error=on_error, progress=progress)
        if self.clip_rule.clip_seconds is not None:
            parts = [result.features for result in results if result.features is not None]
            return ClipFeatures.concatenate(parts, self.feature_shape)  # type: ignore[arg-type]
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
            progress: show a progress bar in seconds of audio, with the files done and an
                estimate of the total from the file sizes; default: when the input has a length
                greater than one batch.
            num_workers: decoding processes for this call (default :attr:`num_workers`).

        Yields:
            :class:`FileFeatures`, in input order.

        Raises:
            AudioDecodeError: with ``on_error="raise"``, a file cannot be decoded.
            ConfigError: ``on_error`` is invalid.
        """
        from beats_extract.progress import AudioProgress

        _check_on_error(on_error)
        total = len(paths) if isinstance(paths, Sequence) else None
        if progress is None:
            progress = total is None or total > self.batch_size
        names: dict[int, str] = {}

        def tracked() -> Iterator[str]:
            for index, path in enumerate(paths):
                names[index] = os.fspath(path)
                yield names[index]

        units = plan_file_units(tracked(), batch_size=self.batch_size, cutting=self.cutting)
        workers = self.num_workers if num_workers is None else num_workers
        if total is not None:
            workers = min(workers, max(0, total - 1))
        batches = decode_units(units, self._decoder, workers)
        with AudioProgress(paths if isinstance(paths, Sequence) else None, enabled=bool(progress)) as bar:
            for index, features, error, seconds in _in_order(
                run_batches(
                    self.runner,
                    bar.track(batches),
                    cutting=self.cutting,
                    pooling=self.pooling,
                    batch_size=self.batch_size,
                    on_error=on_error,
                )
            ):
                if error is not None:
                    warnings.warn(f"skipped: {error}", SkippedFileWarning, stacklevel=2)
                bar.file_done(index, seconds)
                name = names.pop(index)
                yield FileFeatures(index, name, _named(features, name), error, seconds)

    # ------------------------------------------------------------------ arrays
    def extract_from_array(
        self, waveform: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE
    ) -> Features:
        """Features of one waveform in memory.

        Args:
            waveform: float samples in [-1, 1], ``(samples,)`` or ``(channels, samples)``
                (channels are averaged); numpy or torch, on any device.
            sample_rate: its rate in Hz; resampled to 16 kHz if different.

        Returns:
            float32 :attr:`feature_shape` array, :class:`FrameEmbeddings` with ``pooling=None``,
            or :class:`ClipFeatures` with ``clip_seconds`` (paths ``"<array 0>"``).

        Raises:
            InvalidAudioError: the waveform is empty, not float, has NaN or infinite
                samples, or more than 2 dimensions.
        """
        return self._extract_arrays([waveform], sample_rate, channels=True)[0]

    def extract_from_arrays(
        self,
        waveforms: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
        sample_rate: int = SAMPLE_RATE,
    ) -> np.ndarray | list[FrameEmbeddings] | ClipFeatures:
        """Features of several mono waveforms in memory, of any lengths.

        Args:
            waveforms: a sequence of 1-D float waveforms, or a 2-D array/tensor whose rows
                are the clips (e.g. a batch of equal-length clips).
            sample_rate: their rate in Hz; resampled to 16 kHz if different.

        Returns:
            float32 ``(n, *feature_shape)``, a list of :class:`FrameEmbeddings` with
            ``pooling=None``, or the :class:`ClipFeatures` of all of them with ``clip_seconds``
            (paths ``"<array i>"``).

        Raises:
            InvalidAudioError: a waveform is empty, not 1-D, not float, or has NaN or infinite samples.
        """
        if isinstance(waveforms, (np.ndarray, torch.Tensor)) and waveforms.ndim != 2:
            raise InvalidAudioError(
                f"extract_from_arrays takes a (clips, samples) array or a list of 1-D waveforms, got shape "
                f"{tuple(waveforms.shape)}; use extract_from_array for one clip"
            )
        results = self._extract_arrays(list(waveforms), sample_rate)
        if self.clip_rule.clip_seconds is not None:
            return ClipFeatures.concatenate(results, self.feature_shape)  # type: ignore[arg-type]
        if self.pooling is None:
            return results  # type: ignore[return-value]
        if not results:
            return np.zeros((0, *self.feature_shape), dtype=np.float32)
        return np.stack(results)  # type: ignore[arg-type]

    def _extract_arrays(
        self, waveforms: list[np.ndarray | torch.Tensor], sample_rate: int, channels: bool = False
    ) -> list[Features]:
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
            cutting=self.cutting,
        )
        results: list[Features] = [None] * len(clips)  # type: ignore[list-item]
        for index, features, _, _ in run_batches(
            self.runner,
            decode_units(units, self._decoder, 0),
            cutting=self.cutting,
            pooling=self.pooling,
            batch_size=self.batch_size,
            on_error="raise",
        ):
            results[index] = _named(features, f"<array {index}>")
        return results

    # ------------------------------------------------------------------ the model


# --------------------------------------------------------------------------- helpers
def _named(features: Features | None, path: str) -> Features | None:
    """Clip rows carry the name of their recording."""
    if isinstance(features, ClipFeatures):
        return replace(features, paths=[path] * len(features))
    return features


def _frame_rows(frames: FrameEmbeddings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    half = min_num_samples() / SAMPLE_RATE / 2
    return frames.timestamps - half, frames.timestamps + half, frames.embeddings


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _as_waveform(
    waveform: np.ndarray | torch.Tensor, sample_rate: int, position: int, channels: bool
) -> torch.Tensor:
    """A checked float32 CPU waveform ``(samples,)`` at 16 kHz; ``channels``: average a ``(channels, samples)`` one."""
    from beats_core.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, check_waveform_values, resample

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
    check_waveform_values(tensor, where, sample_rate)
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"{where}: a sample rate of {sample_rate} Hz is not an audio rate "
            f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz); pass the rate the waveform was recorded at"
        )
    tensor = tensor.float()
    if sample_rate != SAMPLE_RATE:
        tensor = resample(tensor, sample_rate, SAMPLE_RATE)
    return tensor.contiguous()


def _in_order(
    results: Iterator[tuple[int, Features | None, AudioDecodeError | None, float]],
) -> Iterator[tuple[int, Features | None, AudioDecodeError | None, float]]:
    """Re-order results that finish out of order (indices 0, 1, 2, ...) into input order."""
    done: dict[int, tuple[Features | None, AudioDecodeError | None, float]] = {}
    following = 0
    for index, *rest in results:
        done[index] = tuple(rest)  # type: ignore[assignment]
        while following in done:
            features, error, seconds = done.pop(following)
            yield following, features, error, seconds
            following += 1
