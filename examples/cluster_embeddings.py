"""Cluster audio clips by their BEATs embeddings, without labels, and check the clusters against the classes.

What it shows:

1. embeddings of a folder of clips (``BEATsFeatureExtractor.extract_from_files``), here
   from a chosen hidden layer (``--layer``; middle layers often cluster sounds better than
   the last one);
2. k-means on them, written out in numpy (k-means++ seeding, several restarts): no
   labels are used;
3. how well the clusters match the true classes (the clips' sub-folders): cluster purity
   and the adjusted Rand index (ARI: 1 = the same grouping, about 0 = chance);
4. a 2-D picture: the embeddings projected on their first two principal components
   (PCA by singular value decomposition), coloured by class, one marker per cluster.

Run it::

    python examples/cluster_embeddings.py                        # on generated sounds (6 classes)
    python examples/cluster_embeddings.py --data /path/to/clips --clusters 8

``--data`` is a folder of audio files. If they sit in one sub-folder per class, the
clusters are scored against those classes and ``--clusters`` defaults to their number;
otherwise give ``--clusters``. Other options: ``--model`` (default BEATs_iter3_plus_AS2M,
downloaded on first use), ``--layer`` (default -1, the last; the base model has 12),
``--output-dir`` (default ``examples-output/cluster_embeddings``).

Output: ``clusters.csv`` (each clip's class and cluster), ``clusters.png``.
"""

from __future__ import annotations

import argparse
import sys
from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write PNG files; no window needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from beats_extract import find_audio_files
from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsFeatureExtractor
from beats_trainer.datasets import make_synthetic_dataset


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cluster audio clips by their BEATs embeddings.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="a folder of audio files (default: generate one)")
    parser.add_argument("--clusters", type=int, help="number of clusters (default: the number of classes)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name or checkpoint (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--layer", type=int, default=-1, help="hidden state to embed with (default -1, the last)"
    )
    parser.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("examples-output/cluster_embeddings"), help="where results go"
    )
    parser.add_argument(
        "--clips-per-class", type=int, default=10, help="generated clips per class (default 10)"
    )
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- k-means in numpy


def kmeans(
    points: np.ndarray, k: int, *, seed: int = 0, restarts: int = 10, iterations: int = 100
) -> np.ndarray:
    """Cluster the rows of ``points`` (N, D) into ``k`` groups; returns the cluster of each row (N,).

    Lloyd's algorithm from k-means++ seeds; the best of ``restarts`` runs (lowest sum of
    squared distances) is kept.
    """
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = None, np.inf
    for _ in range(restarts):
        centres = kmeans_plus_plus(points, k, rng)
        labels = np.full(len(points), -1)
        for _ in range(iterations):
            distances = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)  # (N, k)
            new_labels = distances.argmin(axis=1)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            for j in range(k):
                members = points[labels == j]
                # an empty cluster takes the point that is furthest from its own centre
                centres[j] = members.mean(axis=0) if len(members) else points[distances.min(axis=1).argmax()]
        inertia = ((points - centres[labels]) ** 2).sum()
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


def kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k starting centres, each drawn with probability proportional to its squared distance to the chosen ones."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        distance = ((points[:, None, :] - np.array(centres)[None]) ** 2).sum(axis=-1).min(axis=1)
        total = distance.sum()
        choice = rng.choice(len(points), p=distance / total) if total > 0 else rng.integers(len(points))
        centres.append(points[choice])
    return np.array(centres, dtype=np.float64)


# ----------------------------------------------------------------------------- scores


def purity(classes: np.ndarray, clusters: np.ndarray) -> float:
    """Share of clips whose cluster's most common class is their own class."""
    table = pd.crosstab(clusters, classes)
    return float(table.max(axis=1).sum() / len(classes))


def adjusted_rand_index(classes: np.ndarray, clusters: np.ndarray) -> float:
    """Agreement of two groupings over all pairs of clips, corrected for chance (Hubert and Arabie, 1985)."""

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    table = pd.crosstab(clusters, classes).to_numpy()
    together = pairs(table)  # pairs in the same cluster and the same class
    by_cluster, by_class = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = by_cluster * by_class / pairs(np.array([len(classes)]))
    maximum = (by_cluster + by_class) / 2
    return 1.0 if maximum == expected else (together - expected) / (maximum - expected)


# ----------------------------------------------------------------------------- picture


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto the first two principal components; also returns the share of variance of each."""
    centred = points - points.mean(axis=0)
    _, singular_values, components = np.linalg.svd(centred, full_matrices=False)
    variance = singular_values**2 / (singular_values**2).sum()
    return centred @ components[:2].T, variance[:2]


def plot_clusters(
    xy: np.ndarray, variance: np.ndarray, classes: list[str], clusters: np.ndarray, path: Path
) -> None:
    """Scatter of the 2-D projection: colour = true class, marker = k-means cluster."""
    figure, axes = plt.subplots(figsize=(8, 6), layout="constrained")
    colours = dict(zip(sorted(set(classes)), cycle(plt.get_cmap("tab10").colors), strict=False))
    markers = dict(zip(sorted(set(clusters)), cycle("os^DvP*Xh<>p"), strict=False))
    class_array = np.asarray(classes)
    for name, colour in colours.items():
        for cluster, marker in markers.items():
            chosen = (class_array == name) & (clusters == cluster)
            if chosen.any():
                axes.scatter(*xy[chosen].T, color=colour, marker=marker, s=50, alpha=0.85, edgecolor="black")
    # two legends: one for the colours (classes), one for the markers (clusters)
    class_handles = [
        plt.Line2D([], [], color=c, marker="o", linestyle="", label=n) for n, c in colours.items()
    ]
    cluster_handles = [
        plt.Line2D([], [], color="grey", marker=m, linestyle="", label=f"cluster {k}")
        for k, m in markers.items()
    ]
    first = axes.legend(handles=class_handles, title="class", loc="upper left", bbox_to_anchor=(1.01, 1))
    axes.add_artist(first)
    axes.legend(handles=cluster_handles, title="k-means", loc="lower left", bbox_to_anchor=(1.01, 0))
    axes.set_xlabel(f"principal component 1 ({100 * variance[0]:.0f} % of variance)")
    axes.set_ylabel(f"principal component 2 ({100 * variance[1]:.0f} % of variance)")
    axes.set_title("BEATs embeddings: true classes (colour) and k-means clusters (marker)")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir
    output.mkdir(parents=True, exist_ok=True)

    # 1. The clips, and their classes where the folder has one sub-folder per class.
    if args.data is None:
        data = output / "data"
        print(f"No --data given: generating {args.clips_per_class} clips per class in {data}")
        make_synthetic_dataset(data, clips_per_class=args.clips_per_class)
    else:
        data = args.data
    data = data.resolve()
    paths = find_audio_files([data])
    classes = [p.relative_to(data).parts[0] if len(p.relative_to(data).parts) > 1 else "" for p in paths]
    labelled = all(classes) and len(set(classes)) >= 2
    k = args.clusters or (len(set(classes)) if labelled else None)
    if k is None:
        sys.exit(
            "error: the clips are not in class sub-folders; say how many clusters to make with --clusters"
        )
    print(f"{len(paths)} clips; {len(set(classes)) if labelled else 'no'} classes; {k} clusters")

    # 2. Embeddings: the mean of one hidden layer's tokens per clip.
    extractor = BEATsFeatureExtractor(args.model, pooling="mean", layer=args.layer)
    print(extractor)
    features = extractor.extract_from_files(paths, on_error="skip")
    usable = np.isfinite(features).all(axis=1)  # files that could not be decoded are NaN rows
    if not usable.all():
        print(f"left out {int((~usable).sum())} files that could not be decoded")
    paths = [path for path, keep in zip(paths, usable, strict=True) if keep]
    classes = [name for name, keep in zip(classes, usable, strict=True) if keep]
    features = features[usable]

    # 3. Standardise each dimension (so that a few large ones do not decide everything), then k-means.
    points = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-8)
    clusters = kmeans(points.astype(np.float64), k, seed=args.seed)
    table = pd.DataFrame({"path": [str(p) for p in paths], "class": classes, "cluster": clusters})
    table.to_csv(output / "clusters.csv", index=False)

    # 4. Do the clusters recover the classes? (k-means never saw them.)
    if labelled:
        print(pd.crosstab(table["cluster"], table["class"]).to_string())
        print(f"cluster purity: {purity(np.asarray(classes), clusters):.4f}")
        print(f"adjusted Rand index: {adjusted_rand_index(np.asarray(classes), clusters):.4f}")

    # 5. The picture.
    xy, variance = pca_2d(points)
    plot_clusters(
        xy, variance, classes if labelled else ["clip"] * len(paths), clusters, output / "clusters.png"
    )
    print(f"clusters: {output / 'clusters.csv'}")
    print(f"picture: {output / 'clusters.png'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        sys.exit(f"error: {error}")
