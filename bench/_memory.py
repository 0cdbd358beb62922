"""Resident memory of this process, for the benchmarks' memory figures (Linux ``/proc``)."""

from __future__ import annotations

import os


def current_rss() -> int:
    """The resident memory now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Make the peak resident memory (the kernel's high-water mark, VmHWM) the current one."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    """The peak resident memory since the process started or :func:`reset_peak_rss`, in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
