"""``beats extract`` (embeddings of audio files into .npz/.parquet) and ``beats search`` (nearest files).

Each wraps the public API (:class:`~beats_extract.extractor.BEATsFeatureExtractor`,
:func:`~beats_extract.storage.save_features`, :class:`~beats_extract.search.FeatureIndex`).
Heavy modules are imported when a command runs, so ``beats --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from beats_core.hookspecs import SubParsers

__all__ = ["add_commands", "parse_layer", "run_extract", "run_search"]


def parse_layer(text: str) -> int | list[int] | str:
    """Parse ``--layer``: ``-1``, ``4``, ``4,8,12`` or ``all``.

    Args:
        text: the option's value.

    Returns:
        An int, a list of ints, or ``"all"``.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    text = text.strip()
    if text == "all":
        return text
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int, a comma-separated list of ints or 'all', got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def _add_model_options(parser: argparse.ArgumentParser, *, model_default: str | None) -> None:
    parser.add_argument(
        "--model",
        default=model_default,
        help="a model from `beats models` or a checkpoint file"
        + (" (default: the default model)" if model_default is None else ""),
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        help="auto (bfloat16 where the hardware has it natively, else float32), float32, bfloat16 or float16",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default: 16)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding processes (default: on a GPU cores - 1, at most 4; on the CPU cores // 4)",
    )


def add_commands(subparsers: SubParsers) -> None:
    """Add ``extract`` and ``search`` to the ``beats`` parser.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    extract = subparsers.add_parser(
        "extract",
        help="compute BEATs embeddings of audio files",
        description=(
            "Compute one BEATs embedding per audio file and save them with the path of each row. "
            "Files that cannot be decoded are listed at the end; the exit status is 1 only if "
            "nothing could be extracted."
        ),
    )
    extract.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, folders (searched recursively) or .txt files listing paths",
    )
    extract.add_argument(
        "-o",
        "--out",
        required=True,
        help="output file: features.npz, or features.parquet (needs pandas, pyarrow)",
    )
    _add_model_options(extract, model_default=None)
    extract.add_argument(
        "--pooling", default="mean", help="mean, max, first, last, meanstd or a plugin's (default: mean)"
    )
    extract.add_argument(
        "--layer",
        type=parse_layer,
        default=-1,
        help="hidden state: -1 (last, default), an index, a list like 4,8,12 (concatenated) or all (stacked)",
    )
    extract.add_argument(
        "--window-seconds",
        type=float,
        default=10.0,
        help="longer files are processed in windows of this length",
    )
    extract.add_argument(
        "--hop-seconds", type=float, default=None, help="step between windows (default: no overlap)"
    )
    extract.set_defaults(func=run_extract)

    search = subparsers.add_parser(
        "search",
        help="find the files most similar to a query sound",
        description=(
            "Rank the files of a features file (written by `beats extract`) by cosine similarity to each "
            "query file, embedded with the same model, pooling and layer."
        ),
    )
    search.add_argument("index", metavar="INDEX", help="a .npz or .parquet file written by `beats extract`")
    search.add_argument("queries", nargs="+", metavar="QUERY", help="audio files to search for")
    search.add_argument("-k", "--top", type=int, default=5, help="results per query (default: 5)")
    _add_model_options(search, model_default=None)
    search.set_defaults(func=run_search)


def run_extract(args: argparse.Namespace) -> int:
    """Run ``beats extract``.

    Args:
        args: the parsed arguments of :func:`add_commands`.

    Returns:
        0 if at least one file was extracted, 1 if none could be.
    """
    import warnings

    import numpy as np

    from beats_extract.extractor import BEATsFeatureExtractor, SkippedFileWarning
    from beats_extract.inputs import find_audio_files
    from beats_extract.search import extractor_metadata
    from beats_extract.storage import check_feature_path, save_features

    out = check_feature_path(args.out)
    files = find_audio_files(args.inputs)
    extractor = BEATsFeatureExtractor(
        args.model,
        pooling=args.pooling,
        layer=args.layer,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_workers=args.workers,
        window_seconds=args.window_seconds,
        hop_seconds=args.hop_seconds,
    )
    rows: list[Any] = []
    paths: list[str] = []
    failures: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)  # listed together at the end instead
        for result in extractor.stream_from_files(files, on_error="skip"):
            if result.error is not None:
                failures.append(str(result.error))
            else:
                rows.append(result.features)
                paths.append(result.path)
    if failures:
        print(f"{len(failures)} of {len(files)} files could not be decoded:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
    if not rows:
        print("beats: error: no embeddings extracted; nothing written", file=sys.stderr)
        return 1
    features = np.stack(rows)
    save_features(out, features, paths, metadata=extractor_metadata(extractor))
    shape = "x".join(str(n) for n in features.shape[1:])
    print(f"wrote {len(rows)} embeddings ({shape}) to {out}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Run ``beats search``.

    Args:
        args: the parsed arguments of :func:`add_commands`.

    Returns:
        0.

    Raises:
        ConfigError: the index does not say which model made it and ``--model`` is not given.
    """
    from beats_core.errors import ConfigError
    from beats_extract.extractor import BEATsFeatureExtractor
    from beats_extract.search import FeatureIndex

    index = FeatureIndex.load(args.index)
    meta = index.metadata
    model = args.model or meta.get("model")
    if model is None:
        raise ConfigError(f"{args.index!r} does not record the model that made it; pass --model")
    extractor = BEATsFeatureExtractor(
        model,
        pooling=meta.get("pooling") or "mean",
        layer=meta.get("layer", -1),
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_workers=args.workers,
        window_seconds=meta.get("window_seconds", 10.0),
        hop_seconds=meta.get("hop_seconds"),
    )
    queries = extractor.extract_from_files(args.queries, progress=False)
    for query, hits in zip(args.queries, index.search(queries, k=args.top), strict=True):
        print(query)
        for rank, hit in enumerate(hits, start=1):
            print(f"  {rank:>3}  {hit.score:7.4f}  {hit.path}")
    return 0
