"""Getting audio to the model: work units planned by length, decoded in DataLoader workers.

A recording is cut into clips by the one clip rule (:class:`beats_core.clips.ClipRule`: the
whole recording, or fixed-length clips with overlap), and each clip into the windows the model
runs on (:func:`~beats_extract.framing.plan_windows`). A *row* is one window of one clip. The
rows become *work units*, each of which is one padded batch:

* a recording that is one row (no longer than a clip and a window) is grouped with others of
  similar length (from the file headers, read with :func:`~beats_core.audio.audio_info`, about
  a millisecond each), longest first, so that little compute goes to padding;
* the rows of a longer recording are taken in time order, up to a batch of them per unit, and
  decoded with one seek per unit, so a long recording never has to be in memory at once.

Files are planned chunk by chunk, so an endless stream of paths works in bounded memory. A
:class:`torch.utils.data.DataLoader` decodes the units in worker processes (batches are built in
shared memory there) while the main process runs the model: decoding overlaps inference, and
the units come back in planned order. A file that cannot be decoded does not stop its batch:
its error travels with the batch to the main process. Rows are planned from the header's
length, but what decodes decides: windows past the end of the decoded audio are dropped, and a
recording planned whole is cut from its decoded length.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import torch

from beats_core.audio import audio_info, load_audio
from beats_core.batching import batch_by_length, pad_waveforms
from beats_core.clips import Clip, ClipRule
from beats_core.errors import AudioDecodeError
from beats_core.geometry import SAMPLE_RATE, min_num_samples
from beats_extract.framing import Window, plan_windows

__all__ = [
    "MAX_PADDING",
    "Cutting",
    "DecodedBatch",
    "Part",
    "Row",
    "UnitDecoder",
    "decode_units",
    "plan_file_units",
    "plan_units",
]


@dataclass(frozen=True)
class Cutting:
    """How recordings are cut: into clips (each one result), and clips into model windows.

    Attributes:
        clips: the clip rule; ``ClipRule()`` makes each recording one clip (one result per file).
        windows: the window rule (:meth:`ClipRule.windows`) a clip longer than a window is
            processed in; ``ClipRule()`` runs every clip whole.
        patch_size: ``BEATsConfig.input_patch_size``.
    """

    clips: ClipRule
    windows: ClipRule
    patch_size: int = 16

    @property
    def min_samples(self) -> int:
        """The shortest input of the model; shorter rows are zero-padded to it."""
        return min_num_samples(self.patch_size)

    def rows(self, index: int, num_samples: int) -> list[Row]:
        """Every row of a recording of ``num_samples`` samples, in time order."""
        rows = []
        for number, clip in enumerate(self.clips.clips(num_samples)):
            for window in plan_windows(clip.num_samples, self.windows, self.patch_size):
                rows.append(Row(index, number, clip, replace(window, start=clip.start + window.start)))
        return rows


@dataclass(frozen=True)
class Row:
    """One row of a batch: a window of a clip of a recording.

    Attributes:
        index: the recording's position in the input.
        clip_number: the clip's position in the recording.
        clip: the clip, in samples of the recording.
        window: the window, in samples of the recording (``window.start`` is absolute), with
            the time steps it contributes to its clip.
    """

    index: int
    clip_number: int
    clip: Clip
    window: Window


@dataclass(frozen=True)
class Part:
    """What one work unit needs of one recording.

    Attributes:
        index: the recording's position in the input.
        source: the file path, or the recording's float32 16 kHz waveform ``(samples,)``.
        rows: the rows to decode, or ``None`` for the whole recording (its rows are then
            planned from its decoded length).
        last: whether this is the recording's final part (its results can be finished).
        seconds: seconds of audio this part adds to what earlier parts of the recording
            covered (for progress), from the header; ``None`` until decoded for a whole part.
        error: an error found while planning (the header could not be read).
    """

    index: int
    source: str | torch.Tensor
    rows: tuple[Row, ...] | None = None
    last: bool = True
    seconds: float | None = None
    error: AudioDecodeError | None = None


@dataclass
class DecodedBatch:
    """A work unit, decoded.

    Attributes:
        waveforms: float32 ``(R, N)`` zero-padded windows, or ``None`` when no row decoded.
        rows: what each row is.
        finished: indices of the recordings whose final part was in this unit.
        errors: index -> the error of each recording that could not be decoded.
        seconds: seconds of audio the unit covers (for progress).
    """

    waveforms: torch.Tensor | None
    rows: list[Row] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    errors: dict[int, AudioDecodeError] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------- planning
#: The most padding a batch of short clips may hold, as a share of its computed samples: a
#: clip never waits in a batch for a much longer one (on a CPU, batching gains less than
#: padding costs), and clips of similar length still share a forward pass.
MAX_PADDING = 0.1


def plan_units(
    recordings: Iterable[tuple[int, str | torch.Tensor, int]], *, batch_size: int, cutting: Cutting
) -> list[tuple[Part, ...]]:
    """Group recordings of known length into work units.

    Args:
        recordings: ``(index, source, samples at 16 kHz)`` of each recording.
        batch_size: the most rows per unit.
        cutting: how recordings are cut into clips and windows.

    Returns:
        The units: the rows of recordings of several rows first (a recording's in time order),
        then the one-row recordings grouped by length, longest first.
    """
    units: list[tuple[Part, ...]] = []
    short: list[tuple[int, str | torch.Tensor, int]] = []
    for index, source, num_samples in recordings:
        rows = cutting.rows(index, num_samples)
        if len(rows) <= 1:
            short.append((index, source, num_samples))
            continue
        covered = 0
        for start in range(0, len(rows), batch_size):
            chunk = tuple(rows[start : start + batch_size])
            end = max(row.window.start + row.window.length for row in chunk)
            last = start + batch_size >= len(rows)
            seconds = (max(end, covered) - covered) / SAMPLE_RATE
            units.append((Part(index, source, chunk, last=last, seconds=seconds),))
            covered = max(end, covered)
    lengths = [num_samples for _, _, num_samples in short]
    for batch in batch_by_length(lengths, batch_size, max_padding=MAX_PADDING) if short else []:
        units.append(tuple(Part(short[i][0], short[i][1]) for i in batch))
    return units


def plan_file_units(
    paths: Iterable[str], *, batch_size: int, cutting: Cutting, chunk_size: int | None = None
) -> Iterator[tuple[Part, ...]]:
    """Plan work units for audio files, a chunk of files at a time.

    Args:
        paths: the files, in input order (any iterable, consumed lazily).
        batch_size: the most rows per unit.
        cutting: how recordings are cut into clips and windows.
        chunk_size: files whose headers are read and grouped together (default ``32 * batch_size``).

    Yields:
        Work units. Files whose header cannot be read come first in their chunk, as one unit
        of parts that carry their errors.
    """
    chunk_size = chunk_size or 32 * batch_size
    iterator = enumerate(paths)
    while chunk := list(itertools.islice(iterator, chunk_size)):
        recordings, failed = [], []
        for index, path in chunk:
            try:
                info = audio_info(path)
            except AudioDecodeError as e:
                failed.append(Part(index, os.fspath(path), error=e))
                continue
            recordings.append((index, os.fspath(path), round(info.frames * SAMPLE_RATE / info.sample_rate)))
        if failed:
            yield tuple(failed)
        yield from plan_units(recordings, batch_size=batch_size, cutting=cutting)


# --------------------------------------------------------------------------- decoding
class UnitDecoder(torch.utils.data.Dataset):
    """Decodes work units into padded batches; a map-style dataset keyed by the units themselves.

    Used directly in the main process, or by a DataLoader whose sampler yields units.

    Args:
        cutting: how recordings are cut into clips and windows.
    """

    def __init__(self, cutting: Cutting) -> None:
        self.cutting = cutting

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
                rows, waveforms, seconds = self._decode(part)
            except AudioDecodeError as e:
                batch.errors[part.index] = e
                continue
            batch.rows.extend(rows)
            pieces.extend(waveforms)
            batch.seconds += seconds
        if pieces:
            batch.waveforms, _ = pad_waveforms(pieces, min_length=self.cutting.min_samples)
        return batch

    def _decode(self, part: Part) -> tuple[list[Row], list[torch.Tensor], float]:
        if part.rows is None:
            waveform = _read(part.source, 0, None)
            rows = self.cutting.rows(part.index, waveform.shape[0])
            return (
                rows,
                [waveform[r.window.start : r.window.start + r.window.length] for r in rows],
                (waveform.shape[0] / SAMPLE_RATE),
            )
        base = min(row.window.start for row in part.rows)
        stop = max(row.window.start + row.window.length for row in part.rows)
        waveform = _read(part.source, base, stop - base)
        decoded_end = base + waveform.shape[0]
        rows, pieces = [], []
        for row in part.rows:
            piece = waveform[row.window.start - base : row.window.start - base + row.window.length]
            # A window past the end of what was decoded (the header overstated the length) is dropped.
            if piece.shape[0] == 0 or (row.window.start > 0 and piece.shape[0] < self.cutting.min_samples):
                continue
            clip = Clip(row.clip.start, min(row.clip.stop, decoded_end))
            rows.append(replace(row, clip=clip, window=replace(row.window, length=piece.shape[0])))
            pieces.append(piece)
        seconds = part.seconds or 0.0
        return rows, pieces, seconds


def _read(source: str | torch.Tensor, offset: int, length: int | None) -> torch.Tensor:
    if isinstance(source, torch.Tensor):
        return source[offset:] if length is None else source[offset : offset + length]
    return load_audio(
        source, offset=offset / SAMPLE_RATE, duration=None if length is None else length / SAMPLE_RATE
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
