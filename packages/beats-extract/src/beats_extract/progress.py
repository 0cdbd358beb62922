"""Progress in seconds of audio, so that an hour-long recording moves the bar as it is processed.

The bar counts seconds of audio embedded (each decoded batch adds what it covers) and the
files done. Its total is estimated before the audio is read: the files' sizes are known at
once (a ``stat`` each), and once some files are done their seconds per byte turn the bytes
still to do into seconds, so the ETA is right long before the last header is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType

from beats_extract.loading import DecodedBatch

__all__ = ["AudioProgress"]


class AudioProgress:
    """A tqdm bar of seconds of audio with files done and an estimated total.

    Args:
        paths: the files, when their number is known (their sizes make the estimate); ``None``
            for a stream of unknown length (no total).
        enabled: show the bar (on stderr); when false everything is a no-op.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]] | None, *, enabled: bool) -> None:
        self.enabled = enabled
        self.sizes = [_size(path) for path in paths] if enabled and paths is not None else None
        self.total_bytes = sum(self.sizes) if self.sizes else 0
        self.done_bytes = 0
        self.done_seconds = 0.0
        self.files = 0
        self.bar = None

    def __enter__(self) -> AudioProgress:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=None,
                unit="s",
                unit_scale=True,
                desc="BEATs (seconds of audio)",
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}, {postfix}]",
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.close()

    def track(self, batches: Iterable[DecodedBatch]) -> Iterator[DecodedBatch]:
        """Pass batches through, adding the seconds of audio each covers to the bar."""
        for batch in batches:
            yield batch
            if self.bar is not None and batch.seconds:
                if self.bar.total is not None and self.bar.n + batch.seconds > self.bar.total:
                    self.bar.total = self.bar.n + batch.seconds  # the estimate was short: never past 100 %
                self.bar.update(batch.seconds)

    def file_done(self, index: int, seconds: float) -> None:
        """Count a finished file (``seconds`` of audio) and refine the estimated total."""
        if self.bar is None:
            return
        self.files += 1
        if self.sizes is not None and index < len(self.sizes):
            self.done_bytes += self.sizes[index]
            self.done_seconds += seconds
            if self.done_bytes:
                estimate = self.done_seconds + (self.total_bytes - self.done_bytes) * (
                    self.done_seconds / self.done_bytes
                )
                self.bar.total = max(estimate, self.bar.n)
        self.bar.set_postfix_str(
            f"{self.files}/{len(self.sizes)} files" if self.sizes is not None else f"{self.files} files",
            refresh=True,
        )


def _size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
