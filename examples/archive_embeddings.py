"""Embed an archive of long field recordings into a store, in 5 s clips, and look at it over time.

What it shows:

1. a store of clip embeddings (``beats_extract.archive.embed_into_store``, what ``beats extract
   FOLDER -o STORE --clip-seconds 5`` does): one row per 5 s clip of every recording, each clip
   embedded alone, written to Parquet parts as it goes, with a progress bar in seconds of audio;
2. resuming: the run is stopped after part of the archive, run again, and only what is missing
   is embedded (the same happens after a crash or a killed job);
3. the store read as one table by pandas (``pandas.read_parquet(STORE)``) and as one matrix by
   ``beats_extract.store.read_store``;
4. a timeline: how similar every clip of the longest recording is to a query clip, as a picture,
   so that the moments that sound like the query stand out.

Run it::

    python examples/archive_embeddings.py                     # on generated recordings
    python examples/archive_embeddings.py --data /path/to/recordings --clip-seconds 5

``--data`` is any folder of recordings (searched recursively). Other options: ``--model`` (a
registered name, a checkpoint file or ``hf-hub:owner/name``; default BEATs_iter3_plus_AS2M,
downloaded on first use), ``--clip-seconds``, ``--clip-overlap``, ``--output-dir`` (default
``examples-output/archive_embeddings``).

The same on the command line, and on several processes or machines::

    beats extract recordings/ -o store/ --clip-seconds 5              # run again to continue
    accelerate launch --num_processes 4 -m beats_extract recordings/ -o store/ --clip-seconds 5
    torchrun --nproc_per_node 4 -m beats_extract recordings/ -o store/ --clip-seconds 5

Output (in the output folder): ``store/`` (Parquet parts and ``_manifest.json``) and
``timeline.png``.
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
import soundfile as sf

from beats_data.synthetic import SYNTHETIC_CLASSES, synthesize_clip
from beats_extract import find_audio_files
from beats_extract.archive import embed_into_store
from beats_extract.store import read_store
from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsFeatureExtractor


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Embed an archive of recordings into a store of clip embeddings.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="a folder of recordings (default: generate one)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="a model name, checkpoint file or hf-hub:owner/name"
    )
    parser.add_argument("--clip-seconds", type=float, default=5.0, help="clip length (default 5)")
    parser.add_argument("--clip-overlap", type=float, default=0.0, help="seconds shared by consecutive clips")
    parser.add_argument("--minutes", type=float, default=2.0, help="length of each generated recording")
    parser.add_argument("--output-dir", type=Path, default=Path("examples-output/archive_embeddings"))
    return parser.parse_args(argv)


def generate_archive(folder: Path, minutes: float) -> None:
    """Three sites of field recordings: background with sound events planted every 20 to 40 s."""
    rng = np.random.default_rng(0)
    classes = sorted(SYNTHETIC_CLASSES)
    for site in range(3):
        seconds = minutes * 60 * (1.0 - 0.25 * site)
        signal = (0.01 * rng.standard_normal(round(seconds * 16000))).astype(np.float32)
        start = rng.uniform(5, 20)
        while start < seconds - 6:
            sound = classes[int(rng.integers(len(classes)))]
            event = synthesize_clip(sound, float(rng.uniform(2, 5)), seed=rng)
            at = round(start * 16000)
            signal[at : at + len(event)] += event[: len(signal) - at]
            start += rng.uniform(20, 40)
        path = folder / f"site{site + 1}" / "2026-06-01_0500.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.clip(signal, -1, 1), 16000)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir
    data = args.data
    if data is None:
        data = output / "recordings"
        if not data.exists():
            print(f"Generating three field recordings of up to {args.minutes:g} min in {data} ...")
            generate_archive(data, args.minutes)
    recordings = find_audio_files([data])
    extractor = BEATsFeatureExtractor(
        args.model, clip_seconds=args.clip_seconds, clip_overlap=args.clip_overlap
    )
    store = output / "store"

    print(f"\n== 1. The first {len(recordings) - 1} recordings (as if the run were stopped there)")
    first = embed_into_store(extractor, recordings[:-1], store)
    print(f"embedded {first.embedded} recordings, {first.rows} clips")

    print("\n== 2. The whole archive: only what is missing is embedded")
    second = embed_into_store(extractor, recordings, store)
    print(
        f"embedded {second.embedded} recording(s), {second.rows} clips; {second.skipped} already in the store"
    )
    print(
        f"store: {second.summary['recordings']} recordings, {second.summary['rows']} clips, "
        f"{second.summary['parts']} Parquet part(s)"
    )

    print("\n== 3. The store as one table")
    table = pd.read_parquet(store)
    print(
        table.groupby("path")
        .agg(clips=("start", "size"), first=("start", "min"), last=("end", "max"))
        .to_string()
    )
    stored = read_store(store)
    print(
        f"read_store: features {stored.features.shape} {stored.features.dtype}, model {stored.metadata['settings']['model']}"
    )

    print("\n== 4. A timeline of the longest recording")
    longest = max(set(stored.paths), key=stored.paths.count)
    rows = np.flatnonzero(np.array(stored.paths) == longest)
    rows = rows[np.argsort(stored.starts[rows])]
    vectors = stored.features[rows] / np.linalg.norm(stored.features[rows], axis=1, keepdims=True)
    energy = vectors @ vectors.mean(axis=0)
    query = int(np.argmin(energy))  # the clip least like the recording's average: most likely an event
    similarity = vectors @ vectors[query]
    print(f"query: the clip at {stored.starts[rows][query]:.0f} s of {longest}")
    for rank, k in enumerate(np.argsort(-similarity)[:5], start=1):
        print(f"  {rank}  {similarity[k]:.4f}  {stored.starts[rows][k]:6.1f} - {stored.ends[rows][k]:6.1f} s")
    figure, axis = plt.subplots(figsize=(10, 3))
    axis.bar(stored.starts[rows], similarity, width=stored.ends[rows] - stored.starts[rows], align="edge")
    axis.axvline(stored.starts[rows][query], color="black", linestyle=":")
    axis.set(
        xlabel="time in the recording (s)",
        ylabel="cosine similarity to the query",
        title=f"clips of {Path(longest).parent.name}/{Path(longest).name} like the one at "
        f"{stored.starts[rows][query]:.0f} s",
    )
    figure.tight_layout()
    figure.savefig(output / "timeline.png", dpi=100)
    print(f"\nwrote {output / 'timeline.png'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
