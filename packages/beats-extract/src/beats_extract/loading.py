"""Getting audio to the model: work units planned by length, decoded in DataLoader workers.

The input (files, or waveforms in memory) is cut into *work units*, each of which becomes
one padded batch:

* clips no longer than the window are grouped by length (from the file headers, read
  with :func:`~beats_core.audio.audio_info`, about a millisecond each), longest first, so
  that little compute goes to padding;
* a longer recording is cut into windows (:func:`~beats_extract.framing.plan_windows`) and
  consecutive windows, up to a batch of them, make one unit that is decoded with one
  seek, so a long file never has to be in memory at once.

Files are planned chunk by chunk, so an endless stream of paths works in bounded memory.
A :class:`torch.utils.data.DataLoader` decodes the units in worker processes (batches are
built in shared memory there) while the main process runs the model: decoding overlaps
inference, and the units come back in planned order. A file that cannot be decoded
does not stop its batch: its error travels with the batch to the main process.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

from beats_core.audio import audio_info, load_audio
from beats_core.batching import batch_by_length, pad_waveforms
from beats_core.errors import AudioDecodeError
from beats_core.geometry import SAMPLE_RATE
from beats_extract.framing import Window, plan_windows

__all__ = ["DecodedBatch", "Part", "Row", "UnitDecoder", "decode_units", "plan_file_units", "plan_units"]


@dataclass(frozen=True)
class Part:
    """What one work unit needs of one clip.

    Attributes:
        index: the clip's position in the input.
        source: the file path, or the clip's float32 16 kHz waveform ``(samples,)``.
        windows: the windows to decode, or ``None`` for the whole clip (windows are then
            planned from its decoded length).
        last: whether this is the clip's final part (its result can be finished).
        error: an error found while planning (the header could not be read).
    """

    index: int
    source: str | torch.Tensor
    windows: tuple[Window, ...] | None = None
    last: bool = True
    error: AudioDecodeError | None = None


@dataclass(frozen=True)
class Row:
    """One row of a decoded batch: which clip and which window of it."""

    index: int
    window: Window


@dataclass
class DecodedBatch:
    """A work unit, decoded.

    Attributes:
        waveforms: float32 ``(R, N)`` zero-padded windows, or ``None`` when no row decoded.
        rows: what each row is.
        finished: indices of the clips whose final part was in this unit.
        errors: index -> the error of each clip that could not be decoded.
    """

    waveforms: torch.Tensor | None
    rows: list[Row] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    errors: dict[int, AudioDecodeError] = field(default_factory=dict)

    @property
    def lengths(self) -> list[int]:
        """Samples of each row before padding."""
        return [row.window.length for row in self.rows]


# --------------------------------------------------------------------------- planning
#: The most padding a batch of short clips may hold, as a share of its computed samples: a
#: clip never waits in a batch for a much longer one (on a CPU, batching gains less than
#: padding costs), and clips of similar length still share a forward pass.
MAX_PADDING = 0.1


def plan_units(
    clips: Iterable[tuple[int, str | torch.Tensor, int]],
    *,
    batch_size: int,
    window_samples: int | None,
    hop_steps: int,
    patch_size: int = 16,
) -> list[tuple[Part, ...]]:
    """Group clips of known length into work units.

    Args:
        clips: ``(index, source, samples at 16 kHz)`` of each clip.
        batch_size: the most rows per unit.
        window_samples: the window length; ``None`` never splits a clip.
        hop_steps: time steps between window starts.
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        The units: the windows of long clips first (a clip's in time order), then the
        short clips grouped by length, longest first.
    """
    units: list[tuple[Part, ...]] = []
    short: list[tuple[int, str | torch.Tensor, int]] = []
    for index, source, num_samples in clips:
        windows = plan_windows(num_samples, window_samples, hop_steps, patch_size)
        if len(windows) == 1:
            short.append((index, source, num_samples))
            continue
        for start in range(0, len(windows), batch_size):
            chunk = tuple(windows[start : start + batch_size])
            units.append((Part(index, source, chunk, last=start + batch_size >= len(windows)),))
    lengths = [num_samples for _, _, num_samples in short]
    for batch in batch_by_length(lengths, batch_size, max_padding=MAX_PADDING) if short else []:
        units.append(tuple(Part(short[i][0], short[i][1]) for i in batch))
    return units


def plan_file_units(
    paths: Iterable[str],
    *,
    batch_size: int,
    window_samples: int | None,
    hop_steps: int,
    patch_size: int = 16,
    chunk_size: int | None = None,
) -> Iterator[tuple[Part, ...]]:
    """Plan work units for audio files, a chunk of files at a time.

    Args:
        paths: the files, in input order (any iterable, consumed lazily).
        batch_size: the most rows per unit.
        window_samples: the window length; ``None`` never splits a file.
        hop_steps: time steps between window starts.
        patch_size: ``BEATsConfig.input_patch_size``.
        chunk_size: files whose headers are read and grouped together (default
            ``32 * batch_size``).

    Yields:
        Work units. Files whose header cannot be read come first in their chunk, as
        one unit of parts that carry their errors.
    """
    chunk_size = chunk_size or 32 * batch_size
    iterator = enumerate(paths)
    while chunk := list(itertools.islice(iterator, chunk_size)):
        clips, failed = [], []
        for index, path in chunk:
            try:
                info = audio_info(path)
            except AudioDecodeError as e:
                failed.append(Part(index, str(path), error=e))
                continue
            clips.append((index, str(path), round(info.frames * SAMPLE_RATE / info.sample_rate)))
        if failed:
            yield tuple(failed)
        yield from plan_units(
            clips,
            batch_size=batch_size,
            window_samples=window_samples,
            hop_steps=hop_steps,
            patch_size=patch_size,
        )


# --------------------------------------------------------------------------- decoding
class UnitDecoder(torch.utils.data.Dataset):
    """Decodes work units into padded batches; a map-style dataset keyed by the units themselves.

    Used directly in the main process, or by a DataLoader whose sampler yields units.

    Args:
        window_samples: the window length in samples (for clips decoded whole that turn
            out longer than their header said), or ``None``.
        hop_steps: time steps between window starts.
        min_samples: the shortest input of the model; shorter rows are zero-padded to it.
        patch_size: ``BEATsConfig.input_patch_size``.
    """

    def __init__(
        self, window_samples: int | None, hop_steps: int, min_samples: int, patch_size: int = 16
    ) -> None:
        self.window_samples = window_samples
        self.hop_steps = hop_steps
        self.min_samples = min_samples
        self.patch_size = patch_size

    def __getitem__(self, unit: tuple[Part, ...]) -> DecodedBatch:
        """Decode one work unit."""
        pieces: list[torch.Tensor] = []
        batch = DecodedBatch(waveforms=None)
        for part in unit:
            if part.last:
                batch.finished.append(part.index)
            if part.error is not None:
                batch.errors[part.index] = part.error
                continue
            try:
                rows, waveforms = self._decode(part)
            except AudioDecodeError as e:
                batch.errors[part.index] = e
                continue
            batch.rows.extend(rows)
            pieces.extend(waveforms)
        if pieces:
            batch.waveforms, _ = pad_waveforms(pieces, min_length=self.min_samples)
        return batch

    def _decode(self, part: Part) -> tuple[list[Row], list[torch.Tensor]]:
        if part.windows is None:
            waveform = self._read(part.source, 0, None)
            windows = plan_windows(waveform.shape[0], self.window_samples, self.hop_steps, self.patch_size)
            base = 0
        else:
            windows = list(part.windows)
            base = windows[0].start
            stop = max(window.start + window.length for window in windows)
            waveform = self._read(part.source, base, stop - base)
        rows, pieces = [], []
        for window in windows:
            piece = waveform[window.start - base : window.start - base + window.length]
            # A window past the end of what was decoded (the header overstated the length) is dropped.
            if piece.shape[0] == 0 or (window.start > 0 and piece.shape[0] < self.min_samples):
                continue
            rows.append(
                Row(part.index, Window(window.start, piece.shape[0], window.keep_start, window.keep_stop))
            )
            pieces.append(piece)
        return rows, pieces

    @staticmethod
    def _read(source: str | torch.Tensor, offset: int, length: int | None) -> torch.Tensor:
        if isinstance(source, torch.Tensor):
            return source[offset:] if length is None else source[offset : offset + length]
        return load_audio(
            source,
            offset=offset / SAMPLE_RATE,
            duration=None if length is None else length / SAMPLE_RATE,
        )


def _identity(batch: DecodedBatch) -> DecodedBatch:
    return batch


def decode_units(
    units: Iterable[tuple[Part, ...]], decoder: UnitDecoder, num_workers: int
) -> Iterator[DecodedBatch]:
    """Decode work units in order, in ``num_workers`` worker processes (0: in this process).

    Args:
        units: the work units (consumed lazily, a few ahead of the results).
        decoder: decodes one unit.
        num_workers: DataLoader worker processes.

    Yields:
        The decoded batches, in the order of ``units``.
    """
    if num_workers == 0:
        yield from map(decoder.__getitem__, units)
        return
    loader = torch.utils.data.DataLoader(
        decoder,
        sampler=_Units(units),
        batch_size=None,
        collate_fn=_identity,
        num_workers=num_workers,
        prefetch_factor=2,
    )
    yield from loader


class _Units(torch.utils.data.Sampler):
    """A sampler whose "indices" are work units, taken lazily from an iterable."""

    def __init__(self, units: Iterable[tuple[Part, ...]]) -> None:
        self.units = units

    def __iter__(self) -> Iterator[tuple[Part, ...]]:
        return iter(self.units)
