"""Benchmark: exact against approximate similarity search (``FeatureIndex``) on embedding-like vectors.

    python3 -m hatch run python bench/search.py [--sizes 10000,100000,1000000] [--dim 768]
        [--data clustered,isotropic] [--queries 100] [--repeats 3] [--sweep 32,64,128,256]
        [--connectivity 16] [--expansion-add 128] [--expansion-search 64] [--vector-dtype f16]

For each size N and kind of data, N + Q float32 vectors are generated (Q = ``--queries``
held out as queries, not rows of the index):

* ``clustered``: embedding-like: 300 Gaussian clusters around a common offset, the variance of
  dimension d falling as 1/d (as in the PCA spectrum of learned embeddings: 18 of 768
  directions hold half the variance, 257 hold 90 %), centres as spread as the clusters
  (random pairs have a cosine of about 0.27, a row and its 10 nearest about 0.72);
* ``isotropic``: a standard Gaussian in all dimensions, the hardest case for any index (every
  row is almost equally far from every other: a row's 10 nearest have a cosine of about 0.13).

Then, in this process, side by side: the exact index (``method="exact"``) and the approximate
one (``method="approximate"``, an HNSW graph through usearch, saved to a temporary folder):
the time to build each, the time of a single query (the median of 20 queries, best of the
repeats) and of a batch of Q queries in one call (best of the repeats), recall@10 of the
approximate search against the exact one, the peak resident memory while building (above
the generated matrix; the kernel's high-water mark, reset before each step), the size of
the saved graph, and the time to open it again memory-mapped (``FeatureIndex(...,
index_path=...)`` on the saved file: the fingerprint of the rows, their norms and
usearch's ``view``) with the memory that adds. ``--sweep`` repeats the approximate queries
with other ``expansion_search`` values on the same graph.

The matrix at 10**6 x 768 is 3 GB; it is generated in place and never copied.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _memory import current_rss, peak_rss, reset_peak_rss

from beats_extract import FeatureIndex
from beats_extract.hnsw import HnswSettings

CLUSTERS = 300
CHUNK_ROWS = 65536


def generate(kind: str, rows: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(rows, dim)`` float32 vectors of a kind (see the module docstring), made in place a chunk at a time."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, dim), dtype=np.float32)
    if kind == "isotropic":
        for first in range(0, rows, CHUNK_ROWS):
            out[first : first + CHUNK_ROWS] = rng.standard_normal(
                (min(CHUNK_ROWS, rows - first), dim), np.float32
            )
        return out
    scale = (1.0 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) * scale
    offset = rng.standard_normal(dim, dtype=np.float32) * scale
    labels = rng.integers(0, CLUSTERS, rows)
    for first in range(0, rows, CHUNK_ROWS):
        block = out[first : first + CHUNK_ROWS]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        block *= scale
        block += centres[labels[first : first + CHUNK_ROWS]]
        block += offset
    return out


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        return next(
            (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
            platform.processor(),
        )


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def single_query_seconds(index: FeatureIndex, queries: np.ndarray, repeats: int) -> float:
    """The median time of one query over 20 queries, the best of the repeats."""
    runs = []
    for _ in range(repeats):
        runs.append(
            statistics.median(timed(lambda q=query: index.search(q, k=10))[0] for query in queries[:20])
        )
    return min(runs)


def batch_seconds(index: FeatureIndex, queries: np.ndarray, repeats: int) -> float:
    return min(timed(lambda: index.search(queries, k=10))[0] for _ in range(repeats))


def recall_at_10(found: list, exact: list) -> float:
    return float(
        np.mean(
            [
                len({h.index for h in a} & {h.index for h in e}) / len(e)
                for a, e in zip(found, exact, strict=True)
            ]
        )
    )


def measure(kind: str, rows: int, args: argparse.Namespace, folder: Path) -> None:
    mb = 2**20
    matrix = generate(kind, rows + args.queries, args.dim)
    features, queries = matrix[:rows], matrix[rows:]
    paths = [f"recording{i // 100}.flac" for i in range(rows)]
    starts = np.arange(rows) % 100 * 5.0
    graph_file = folder / f"{kind}_{rows}.usearch"
    settings = {
        "connectivity": args.connectivity,
        "expansion_add": args.expansion_add,
        "expansion_search": args.expansion_search,
        "vector_dtype": args.vector_dtype,
    }
    print(
        f"\n{kind}, {rows:,} x {args.dim} float32 ({features.nbytes / mb:,.0f} MB), {args.queries} held-out queries"
    )

    base = current_rss()
    reset_peak_rss()
    exact_build, exact = timed(
        lambda: FeatureIndex(features, paths, starts=starts, ends=starts + 5, method="exact")
    )
    exact_peak, exact_held = peak_rss() - base, current_rss() - base
    exact_results = exact.search(queries, k=10)

    base = current_rss()
    reset_peak_rss()
    approx_build, approximate = timed(
        lambda: FeatureIndex(
            features,
            paths,
            starts=starts,
            ends=starts + 5,
            method="approximate",
            index_path=graph_file,
            **settings,
        )
    )
    approx_peak, approx_held = peak_rss() - base, current_rss() - base
    del approximate

    base = current_rss()
    reset_peak_rss()
    view_seconds, viewed = timed(
        lambda: FeatureIndex(
            features,
            paths,
            starts=starts,
            ends=starts + 5,
            method="approximate",
            index_path=graph_file,
            **settings,
        )
    )
    assert viewed.hnsw is not None and viewed.hnsw.memory_mapped, (
        "the saved graph was rebuilt instead of viewed"
    )
    view_peak, view_held = peak_rss() - base, current_rss() - base

    # Queries: exact and approximate alternate, each figure the best of the repeats.
    exact_single = approx_single = exact_batch = approx_batch = float("inf")
    for _ in range(args.repeats):
        exact_single = min(exact_single, single_query_seconds(exact, queries, 1))
        approx_single = min(approx_single, single_query_seconds(viewed, queries, 1))
        exact_batch = min(exact_batch, batch_seconds(exact, queries, 1))
        approx_batch = min(approx_batch, batch_seconds(viewed, queries, 1))
    recall = recall_at_10(viewed.search(queries, k=10), exact_results)
    query_rss = current_rss() - base

    ms = 1000
    q = args.queries
    print(
        f"  {'':<12} {'build':>9} {'1 query':>9} {f'{q} queries':>12} {'recall@10':>10} {'peak RSS':>10} {'held':>9}"
    )
    print(
        f"  {'exact':<12} {exact_build:8.2f}s {exact_single * ms:7.2f}ms {exact_batch * ms:10.1f}ms {1.0:10.4f} "
        f"{exact_peak / mb:8.0f}MB {exact_held / mb:7.0f}MB"
    )
    print(
        f"  {'approximate':<12} {approx_build:8.2f}s {approx_single * ms:7.2f}ms {approx_batch * ms:10.1f}ms "
        f"{recall:10.4f} {approx_peak / mb:8.0f}MB {approx_held / mb:7.0f}MB"
    )
    print(
        f"  speed-up of the approximate queries: {exact_single / approx_single:.1f}x single, "
        f"{exact_batch / approx_batch:.1f}x batched; graph file {graph_file.stat().st_size / mb:,.0f} MB "
        f"({rows / approx_build:,.0f} rows/s to build)"
    )
    print(
        f"  opening the saved graph again (memory-mapped view, no rebuild): {view_seconds * ms:.0f} ms, "
        f"peak {view_peak / mb:.0f} MB, held {view_held / mb:.0f} MB, {query_rss / mb:.0f} MB after the queries"
    )
    for expansion in args.sweep:
        viewed.hnsw.expansion_search = expansion
        seconds = min(batch_seconds(viewed, queries, 1) for _ in range(args.repeats))
        single = single_query_seconds(viewed, queries, args.repeats)
        print(
            f"    expansion_search {expansion:>4}: recall@10 {recall_at_10(viewed.search(queries, k=10), exact_results):.4f}, "
            f"1 query {single * ms:.2f} ms, {q} queries {seconds * ms:.1f} ms "
            f"({exact_batch / seconds:.1f}x batched, {exact_single / single:.1f}x single)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated numbers of rows")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--data", default="clustered,isotropic", help="clustered, isotropic or both")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sweep", default="", help="other expansion_search values to query with, e.g. 32,128,256"
    )
    parser.add_argument("--connectivity", type=int, default=HnswSettings.connectivity)
    parser.add_argument("--expansion-add", type=int, default=HnswSettings.expansion_add)
    parser.add_argument(
        "--expansion-search",
        type=int,
        default=None,
        help="default: by the graph's size (64, or 256 above 250,000 rows)",
    )
    parser.add_argument("--vector-dtype", default=HnswSettings.vector_dtype)
    args = parser.parse_args()
    args.sweep = [int(value) for value in args.sweep.split(",") if value]
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, capability {torch.backends.cpu.get_cpu_capability()}; "
        f"torch {torch.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}"
    )
    try:
        import usearch

        print(f"usearch {usearch.__version__}")
    except ImportError:
        sys.exit("bench/search.py needs usearch: pip install 'beats-extract[search]'")
    with tempfile.TemporaryDirectory() as folder:
        for rows in [int(value) for value in args.sizes.split(",")]:
            for kind in args.data.split(","):
                measure(kind, rows, args, Path(folder))
                for leftover in Path(folder).iterdir():
                    leftover.unlink()


if __name__ == "__main__":
    main()
