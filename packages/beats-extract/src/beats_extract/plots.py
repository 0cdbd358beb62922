"""Pictures of detections: a recording's labels by time, as a heat map of confidence.

matplotlib is optional: :func:`require_matplotlib` says how to install it. The figures are
drawn with matplotlib's object API on an Agg canvas (no pyplot, no global state), and saved
atomically as PNG files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from beats_core.atomic import atomic_path
from beats_core.errors import MissingDependencyError

__all__ = ["MAX_PLOTTED_LABELS", "plot_detections", "require_matplotlib"]

#: The most labels a heat map shows (the most confident ones).
MAX_PLOTTED_LABELS = 30
#: Labels shown for a recording without detections (its most confident ones, below the threshold).
_LABELS_WITHOUT_DETECTIONS = 5


def require_matplotlib() -> Any:
    """Import matplotlib, or say how to install it.

    Returns:
        The ``matplotlib`` module.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError as e:
        raise MissingDependencyError(
            f"plots of detections need matplotlib ({e}); install it with `pip install matplotlib`, or leave out --plot"
        ) from e
    return matplotlib


def plot_detections(
    path: str | os.PathLike[str],
    *,
    starts: np.ndarray,
    ends: np.ndarray,
    confidences: np.ndarray,
    silent: np.ndarray,
    names: Sequence[str],
    detected: Sequence[int],
    title: str,
    min_confidence: float,
) -> Path:
    """Draw a recording's confidence per label and clip as a heat map, and save it as a PNG file.

    One row per label: the detected ones (the most confident first, at most
    :data:`MAX_PLOTTED_LABELS`), or, without any detection, the recording's
    few most confident labels. Each clip is a cell around its centre, reaching halfway to the
    centres of its neighbours (the first from its start, the last to its end), coloured by
    confidence from 0 to 1; silent clips (no detection) are left grey.

    Args:
        path: the PNG file to write.
        starts: float ``(n,)`` clip starts in seconds.
        ends: float ``(n,)`` clip ends in seconds.
        confidences: float ``(n, K)`` the checkpoint's output per clip and class.
        silent: bool ``(n,)`` the silent clips.
        names: the K class names.
        detected: the classes with at least one detection.
        title: the figure's title (the recording).
        min_confidence: the detection threshold, shown in the title.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    confidences = np.asarray(confidences, dtype=np.float32).reshape(len(starts), len(names))
    shown = np.where(np.asarray(silent, dtype=bool)[:, None], np.nan, confidences)
    peak = np.max(np.nan_to_num(shown, nan=-1.0), axis=0, initial=-1.0)  # per label, silent clips aside
    if detected:
        rows = sorted(detected, key=lambda k: -peak[k])[:MAX_PLOTTED_LABELS]
        note = f"{len(detected)} label(s) at or above {min_confidence:g}"
    else:
        rows = list(np.argsort(-peak, kind="stable")[:_LABELS_WITHOUT_DETECTIONS])
        note = f"no detection at or above {min_confidence:g}; its most confident labels"
    if np.any(silent):
        note += "; grey: silent"
    centres = (np.asarray(starts, dtype=np.float64) + np.asarray(ends, dtype=np.float64)) / 2
    edges = np.concatenate([starts[:1], (centres[1:] + centres[:-1]) / 2, ends[-1:]]).astype(np.float64)
    figure = Figure(figsize=(10, 1.6 + 0.3 * len(rows)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(facecolor="0.85")
    if len(starts):
        mesh = axes.pcolormesh(
            edges,
            np.arange(len(rows) + 1),
            np.ma.masked_invalid(shown[:, rows].T),
            vmin=0.0,
            vmax=1.0,
            cmap="magma",
        )
        figure.colorbar(mesh, ax=axes, label="confidence", pad=0.01)
    axes.set_yticks(np.arange(len(rows)) + 0.5, [names[k] for k in rows])
    axes.invert_yaxis()
    axes.set_xlabel("time (s)")
    axes.set_title(f"{title}\n{note}", fontsize=10)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return Path(path)
