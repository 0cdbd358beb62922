"""Extend beats with a plugin package: a dataset loader and a pooling of your own.

beats finds plugins through the ``beats`` entry-point group: any installed package that
lists a module there, and implements hooks in it (``beats_core.hookspecs``: models,
dataset loaders, poolings, sub-commands), adds its names to beats' registries. The
example package ``examples/beats-plugin-example`` registers

* the dataset loader ``jsonl``: a JSON-lines manifest, one ``{"audio": ..., "label": ...}``
  per line (paths relative to the manifest);
* the pooling ``maxmean``: the largest and the mean value of each channel, side by side.

What it shows:

1. both names in ``list_dataset_loaders()`` and ``list_poolings()``, next to the built-ins;
2. ``load_dataset("jsonl", PATH)``, and the same through a ``DATA`` argument ``jsonl:PATH``
   (``resolve_dataset``; ``beats train jsonl:PATH`` and ``BEATsTrainer.from_directory`` take it too);
3. ``BEATsFeatureExtractor(pooling="maxmean")``: 2 x 768 values per clip, whose second
   half is exactly the ``mean`` pooling's vector.

Run it::

    pip install -e examples/beats-plugin-example                     # once
    python examples/plugins.py                                       # on generated sounds
    python examples/plugins.py --data /path/to/manifest.jsonl

Other options: ``--model`` (default BEATs_iter3_plus_AS2M, downloaded on first use),
``--output-dir`` (default ``examples-output/plugins``). Copy ``examples/beats-plugin-example``
to start a plugin of your own: rename the package, keep the entry point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from beats_data import resolve_dataset
from beats_extract import list_poolings, save_features
from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsFeatureExtractor
from beats_trainer.datasets import list_dataset_loaders, load_dataset, make_synthetic_dataset

LOADER, POOLING = "jsonl", "maxmean"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Use the dataset loader and the pooling of an example beats plugin.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="a JSON-lines manifest (default: generate clips and one)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name or checkpoint (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("examples-output/plugins"), help="where results go"
    )
    parser.add_argument(
        "--clips-per-class", type=int, default=4, help="generated clips per class (default 4)"
    )
    return parser.parse_args(argv)


def write_manifest(root: Path, clips_per_class: int) -> Path:
    """Generate clips under ``root`` and list them in ``root/manifest.jsonl`` (paths relative to it)."""
    frame = make_synthetic_dataset(root / "clips", clips_per_class=clips_per_class)
    manifest = root / "manifest.jsonl"
    with manifest.open("w", encoding="utf-8") as file:
        for row in frame.itertuples():
            entry = {
                "audio": Path(row.filename).relative_to(root.resolve()).as_posix(),
                "label": row.category,
            }
            file.write(json.dumps(entry) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir
    output.mkdir(parents=True, exist_ok=True)

    # 1. What is registered: the built-ins and every installed plugin's names.
    loaders, poolings = list_dataset_loaders(), list_poolings()
    print(f"dataset loaders: {', '.join(loaders)}")
    print("poolings: " + ", ".join(f"{name} ({pooling.distribution})" for name, pooling in poolings.items()))
    if LOADER not in loaders or POOLING not in poolings:
        sys.exit(
            "error: the example plugin is not installed; run: pip install -e examples/beats-plugin-example"
        )

    # 2. The plugin's dataset loader, by name, like a built-in one.
    manifest = args.data or write_manifest(output / "data", args.clips_per_class)
    frame = load_dataset(LOADER, manifest)
    print(f"\n{LOADER} loader: {len(frame)} clips from {manifest}")
    print(frame["category"].value_counts().sort_index().to_string())
    # A DATA argument names it as NAME:PATH, as for esc50: or urbansound8k: (beats train, beats validate).
    same = resolve_dataset(f"{LOADER}:{manifest}")
    print(f"resolve_dataset('{LOADER}:...') gives the same {len(same)} clips")

    # 3. The plugin's pooling: BEATsFeatureExtractor(pooling=NAME) looks it up in the registry.
    files = list(frame["filename"])
    extractor = BEATsFeatureExtractor(args.model, pooling=POOLING)
    print(f"\n{extractor}")
    features = extractor.extract_from_files(files)
    print(
        f"{POOLING} features: {features.shape[0]} x {features.shape[1]} ({POOLING} gives 2 values per channel)"
    )
    # Its second half is the mean pooling (the first half is the max, never below the mean).
    width = features.shape[1] // 2
    means = BEATsFeatureExtractor(extractor.model, pooling="mean").extract_from_files(files, progress=False)
    print(f"second half equals the mean pooling: {bool(np.allclose(features[:, width:], means, atol=1e-5))}")
    print(
        f"first half (max) >= second half (mean): {bool((features[:, :width] >= features[:, width:] - 1e-5).all())}"
    )
    saved = save_features(
        output / "features.npz", features, files, metadata={"model": extractor.model_name, "pooling": POOLING}
    )
    print(f"saved: {saved}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        sys.exit(f"error: {error}")
