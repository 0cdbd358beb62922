"""Embed a folder of audio clips with BEATs, save the embeddings, and search them by similarity.

What it shows:

1. ``BEATsFeatureExtractor.extract_from_files``: one 768-d vector per clip (mean of the
   encoder's tokens), for a whole folder, with a progress bar;
2. saving the vectors with the path of each row (``features.npz``, the same file
   ``beats extract`` writes);
3. a ``FeatureIndex``: the top-k most similar clips of a query clip (cosine similarity);
4. how good the neighbours are: precision@k, the share of a clip's k nearest neighbours
   that belong to its own class (the class is the clip's sub-folder), and a picture of
   the similarity matrix, sorted by class.

Run it::

    python examples/extract_and_search.py                    # on generated sounds (6 classes)
    python examples/extract_and_search.py --data /path/to/clips --query /path/to/query.wav

``--data`` is any folder of audio files (WAV, FLAC, MP3, ... searched recursively). If the
files sit in one sub-folder per class (``clips/dog/1.wav``, ``clips/rain/7.flac``), the
script also measures precision@k by class. Other options: ``--model`` (a registered name,
a checkpoint file or ``hf-hub:owner/name``; default: BEATs_iter3_plus_AS2M, downloaded on
first use), ``--k``, ``--output-dir`` (default ``examples-output/extract_and_search``).

The same on the command line::

    beats extract /path/to/clips --out features.npz          # embeddings + paths + model settings
    beats search features.npz /path/to/query.wav -k 5        # the 5 most similar clips

Output (in the output folder): ``features.npz``, ``search_results.csv`` (the query's
neighbours) and ``similarity_matrix.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write PNG files; no window needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from beats_extract import find_audio_files, save_features
from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsFeatureExtractor, FeatureIndex
from beats_trainer.datasets import make_synthetic_dataset


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Embed a folder of clips with BEATs and search it by similarity.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="a folder of audio files (default: generate one)")
    parser.add_argument("--query", type=Path, help="the clip to search for (default: the first clip)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name or checkpoint (default {DEFAULT_MODEL})"
    )
    parser.add_argument("--k", type=int, default=5, help="neighbours per query (default 5)")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("examples-output/extract_and_search"), help="where results go"
    )
    parser.add_argument(
        "--clips-per-class", type=int, default=8, help="generated clips per class (default 8)"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default 16)")
    return parser.parse_args(argv)


def class_of(path: Path, root: Path) -> str | None:
    """The clip's class: its first sub-folder under the data folder (None for a file at the top)."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def precision_at_k(index: FeatureIndex, features: np.ndarray, classes: list[str], k: int) -> pd.Series:
    """For every clip, the share of its k nearest other clips that have its class, averaged per class."""
    # Ask for k + 1 neighbours: the nearest one is the clip itself, which does not count.
    neighbours = index.search(features, k=k + 1)
    shares = []
    for row, hits in enumerate(neighbours):
        others = [hit for hit in hits if hit.index != row][:k]
        shares.append(np.mean([classes[hit.index] == classes[row] for hit in others]))
    return pd.Series(shares, index=classes).groupby(level=0).mean()


def plot_similarity(features: np.ndarray, classes: list[str], path: Path) -> None:
    """The cosine similarity of every pair of clips, sorted by class, as a heat map."""
    order = np.argsort(classes, kind="stable")
    unit = features[order] / np.linalg.norm(features[order], axis=1, keepdims=True)
    similarity = unit @ unit.T
    sorted_classes = [classes[i] for i in order]
    # where each class starts and ends along the axes
    starts = [i for i in range(len(sorted_classes)) if i == 0 or sorted_classes[i] != sorted_classes[i - 1]]
    ends = [*starts[1:], len(sorted_classes)]
    figure, axes = plt.subplots(figsize=(7, 6), layout="constrained")
    image = axes.imshow(similarity, cmap="viridis", interpolation="nearest")
    for boundary in starts[1:]:
        axes.axhline(boundary - 0.5, color="white", linewidth=0.8)
        axes.axvline(boundary - 0.5, color="white", linewidth=0.8)
    centres = [(start + end - 1) / 2 for start, end in zip(starts, ends, strict=True)]
    names = [sorted_classes[start] for start in starts]
    axes.set_xticks(centres, names, rotation=45, ha="right")
    axes.set_yticks(centres, names)
    axes.set_title("Cosine similarity of BEATs embeddings")
    figure.colorbar(image, ax=axes, label="cosine similarity")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir
    output.mkdir(parents=True, exist_ok=True)

    # 1. The clips: your folder, or a generated one with one sub-folder per sound class.
    if args.data is None:
        data = output / "data"
        print(f"No --data given: generating {args.clips_per_class} clips per class in {data}")
        make_synthetic_dataset(data, clips_per_class=args.clips_per_class)
    else:
        data = args.data
    data = data.resolve()
    paths = find_audio_files([data])
    print(f"{len(paths)} audio files in {data}")

    # 2. The extractor. The model is downloaded into the Hugging Face cache the first time.
    #    pooling="mean" averages the encoder's tokens into one vector per clip; clips longer
    #    than 10 s are embedded window by window.
    extractor = BEATsFeatureExtractor(args.model, pooling="mean", batch_size=args.batch_size)
    print(extractor)

    # 3. One vector per file, in the order of `paths`. on_error="skip" gives a file that
    #    cannot be decoded a row of NaN (with a warning naming it) instead of stopping.
    features = extractor.extract_from_files(paths, on_error="skip")
    print(f"embeddings: {features.shape[0]} x {features.shape[1]} float32")

    # 4. Save them with their paths and how they were made, as `beats extract` does.
    #    `beats search features.npz query.wav` reads the model and pooling from this file.
    settings = {"model": extractor.model_name, "pooling": "mean", "layer": extractor.layers}
    features_file = save_features(output / "features.npz", features, paths, metadata=settings)
    print(f"saved: {features_file}")

    # 5. A searchable index (cosine similarity). FeatureIndex.load(features_file) gives the same.
    index = FeatureIndex(features, [str(p) for p in paths], metadata=settings)
    query = (args.query or paths[0]).resolve()
    hits = index.search(extractor.extract_from_file(query), k=args.k)
    print(f"\nThe {len(hits)} clips most similar to {query}:")
    for rank, hit in enumerate(hits, start=1):
        print(f"  {rank:>2}  {hit.score:.4f}  {hit.path}")
    pd.DataFrame(
        [
            {"query": str(query), "rank": r, "path": h.path, "score": h.score}
            for r, h in enumerate(hits, start=1)
        ]
    ).to_csv(output / "search_results.csv", index=False)

    # 6. How well do neighbours share a class? Only when the clips are sorted into classes.
    classes = [class_of(path, data) for path in paths]
    known = [c for c in classes if c is not None]
    if len(known) == len(classes) and len(set(known)) >= 2 and np.isfinite(features).all():
        per_class = precision_at_k(index, features, known, args.k)
        print(f"\nprecision@{args.k} by class (share of the {args.k} nearest clips in the same class):")
        for name, value in per_class.items():
            print(f"  {name:<20} {value:.3f}")
        print(f"mean precision@{args.k}: {per_class.mean():.4f}")
        plot_similarity(features, known, output / "similarity_matrix.png")
        print(f"similarity matrix: {output / 'similarity_matrix.png'}")
    else:
        print(
            "(precision@k needs every clip in a class sub-folder, at least two classes, and no skipped file)"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        sys.exit(f"error: {error}")
