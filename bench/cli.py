"""Benchmark: how long the ``beats`` command takes to start (``--help``, ``--version``, an argument error).

Each command runs in a fresh process, as a user runs it, several times; the best and the
median wall-clock times are printed, next to ``python -c pass`` (the interpreter alone)
and ``python -c "import torch"`` (what starting the command must not pay).

    python3 -m hatch run python bench/cli.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def timed(command: list[str], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    beats = str(Path(sys.executable).with_name("beats"))
    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}")
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
        ("beats --help", [beats, "--help"]),
        ("beats --version", [beats, "--version"]),
        ("beats extract (argument error)", [beats, "extract"]),
    ]
    print(f"{'command':<34}{'best':>9}{'median':>9}")
    for name, command in rows:
        seconds = timed(command, args.repeats)
        print(f"{name:<34}{min(seconds):>8.3f}s{statistics.median(seconds):>8.3f}s")


if __name__ == "__main__":
    main()
