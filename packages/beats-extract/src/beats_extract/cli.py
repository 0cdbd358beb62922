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

__all__ = [
    "add_runtime_options",
    "add_commands",
    "add_extract_arguments",
    "build_extractor",
    "parse_layer",
    "run_extract",
    "run_search",
]


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


def add_runtime_options(
    parser: argparse.ArgumentParser,
    *,
    batch_size: int = 16,
    batch_note: str = "",
    dtype_of_index: bool = False,
) -> None:
    """``--device``, ``--dtype``, ``--batch-size`` and ``--workers``: how a command runs its model.

    Args:
        parser: the command's parser.
        batch_size: the default of ``--batch-size``.
        batch_note: said after the default in the help (``": why"``).
        dtype_of_index: ``--dtype`` defaults to None, for the precision the searched index was made in.
    """
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps"
    )
    choices = "auto (bfloat16 where the hardware has it natively, else float32), float32, bfloat16 or float16"
    parser.add_argument(
        "--dtype",
        default=None if dtype_of_index else "auto",
        help=f"{choices} (default: the precision the index was made in)" if dtype_of_index else choices,
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help=f"clips per forward pass (default: {batch_size}{batch_note})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding processes (default: on a GPU cores - 1, at most 4; on the CPU cores // 4)",
    )


def _add_model_options(parser: argparse.ArgumentParser, *, dtype_of_index: bool = False) -> None:
    parser.add_argument(
        "--model",
        help="a model from `beats models`, a checkpoint file, hf-hub:owner/name or an exported .onnx file "
        "(default: the default model)",
    )
    add_runtime_options(parser, dtype_of_index=dtype_of_index)


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``beats extract`` (and of ``python -m beats_extract``).

    Args:
        parser: the parser to add them to.
    """
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio files, folders (searched recursively) or .txt files listing paths",
    )
    parser.add_argument(
        "-o",
        "--out",
        required=True,
        help="a folder: a store of Parquet parts, written as it goes and resumable (for archives); or one "
        "file, features.npz or features.parquet (for small jobs)",
    )
    _add_model_options(parser)
    parser.add_argument(
        "--pooling",
        default="mean",
        help="mean, max, first, last, meanstd, a plugin's, or none (one row per 0.16 s time step) (default: mean)",
    )
    parser.add_argument(
        "--layer",
        type=parse_layer,
        default=-1,
        help="hidden state: -1 (last, default), an index, a list like 4,8,12 (concatenated) or all (stacked)",
    )
    parser.add_argument(
        "--clip-seconds",
        type=float,
        help="one row per clip of this length, each embedded alone (default: one row per file)",
    )
    parser.add_argument(
        "--clip-overlap", type=float, default=0.0, help="seconds shared by consecutive clips (default: 0)"
    )
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=10.0,
        help="longer files or clips are processed in windows of this length and pooled (default: 10)",
    )
    parser.add_argument(
        "--hop-seconds", type=float, default=None, help="step between windows (default: no overlap)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing store instead of adding to it (a .npz or .parquet file is always replaced)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_commands(subparsers: SubParsers) -> None:
    """Add ``extract`` and ``search`` to the ``beats`` parser.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    extract = subparsers.add_parser(
        "extract",
        help="compute BEATs embeddings of audio files, per file or per clip",
        description=(
            "Compute BEATs embeddings of audio files, one row per file or per clip (--clip-seconds), with the "
            "path, start and end of each row. Into a folder, the rows go into a store of Parquet parts as they "
            "are computed: run the same command again after an interruption and only what is missing is "
            "extracted. Several processes: accelerate launch [options] -m beats_extract ARGS, or torchrun "
            "--nproc_per_node N -m beats_extract ARGS. Files that cannot be decoded are listed at the end; the "
            "exit status is 1 only if nothing could be extracted."
        ),
    )
    add_extract_arguments(extract)
    extract.set_defaults(func=run_extract)

    search = subparsers.add_parser(
        "search",
        help="find the files or clips most similar to a query sound",
        description=(
            "Rank the rows of a store or features file (written by `beats extract`) by cosine similarity to each "
            "query, embedded with the same model and settings: an audio file, or a clip PATH@START-END (seconds) "
            "of a recording (a clip that is a row of the store is not embedded again). With -o, the hits are "
            "written as a CSV table (path,start,end,score,label,query) to label and train on: "
            "beats train --freeze-backbone --embeddings STORE hits.csv."
        ),
    )
    search.add_argument(
        "index", metavar="INDEX", help="a store folder, or a .npz or .parquet file written by `beats extract`"
    )
    search.add_argument(
        "queries", nargs="+", metavar="QUERY", help="audio files, or clips PATH@START-END of recordings"
    )
    search.add_argument("-k", "--top", type=int, default=5, help="results per query (default: 5)")
    search.add_argument("-o", "--output", help="write the hits to this CSV file (label column empty)")
    _add_model_options(search, dtype_of_index=True)
    search.set_defaults(func=run_search)


def build_extractor(args: argparse.Namespace, device: str | None = None) -> Any:
    """The :class:`~beats_extract.extractor.BEATsFeatureExtractor` that parsed ``extract`` arguments ask for.

    Args:
        args: the parsed arguments of :func:`add_extract_arguments`.
        device: a device that overrides ``--device`` (a process's own GPU in a multi-process run).

    Returns:
        The extractor.
    """
    from beats_extract.extractor import BEATsFeatureExtractor

    return BEATsFeatureExtractor(
        args.model,
        pooling=None if str(args.pooling).lower() == "none" else args.pooling,
        layer=args.layer,
        device=device or args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_workers=args.workers,
        window_seconds=args.window_seconds,
        hop_seconds=args.hop_seconds,
        clip_seconds=args.clip_seconds,
        clip_overlap=args.clip_overlap,
    )


def run_extract(args: argparse.Namespace, group: Any = None) -> int:
    """Run ``beats extract``: into a store (a folder) or into one ``.npz``/``.parquet`` file.

    Args:
        args: the parsed arguments of :func:`add_extract_arguments`.
        group: the processes of a multi-process run (:class:`~beats_extract.archive.ProcessGroup`);
            ``None`` for this process alone.

    Returns:
        0 if at least one file was extracted (or all were already in the store), 1 if none could be.
    """
    from beats_extract.inputs import find_audio_files
    from beats_extract.storage import check_feature_path, is_store_path

    to_store = is_store_path(args.out)
    if not to_store:
        check_feature_path(args.out)
    files = find_audio_files(args.inputs)
    if not to_store:
        return _extract_to_file(args, files)
    from beats_extract.archive import ProcessGroup, embed_into_store

    group = group or ProcessGroup()
    extractor = build_extractor(args, device=None if group.world_size == 1 else group.device)
    run = embed_into_store(
        extractor, files, args.out, overwrite=args.overwrite, progress=not args.no_progress, group=group
    )
    where = f"process {group.rank}: " if group.world_size > 1 else ""
    if run.failures:
        print(
            f"{where}{len(run.failures)} file(s) could not be decoded (retried by the next run):",
            file=sys.stderr,
        )
        for reason in run.failures.values():
            print(f"  {reason}", file=sys.stderr)
    print(
        f"{where}embedded {run.embedded} file(s) ({run.rows} rows); {run.skipped} were already in the store "
        f"{args.out}"
    )
    if run.summary:
        summary = run.summary
        print(
            f"store {args.out}: {summary['recordings']} file(s), {summary['rows']} rows in {summary['parts']} part(s)"
        )
    return 0 if run.embedded or run.skipped or not files else 1


def _extract_to_file(args: argparse.Namespace, files: list[Any]) -> int:
    import warnings

    import numpy as np

    from beats_extract.extractor import SkippedFileWarning
    from beats_extract.storage import save_features

    extractor = build_extractor(args)
    paths, starts, ends, rows, failures = [], [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)  # listed together at the end instead
        for result in extractor.stream_from_files(files, on_error="skip", progress=not args.no_progress):
            if result.error is not None:
                failures.append(str(result.error))
                continue
            first, last, features = result.rows()
            paths.extend([result.path] * len(first))
            starts.append(first)
            ends.append(last)
            rows.append(features)
    if failures:
        print(f"{len(failures)} of {len(files)} files could not be decoded:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
    if not rows:
        print("beats: error: no embeddings extracted; nothing written", file=sys.stderr)
        return 1
    features = np.concatenate(rows)
    save_features(
        args.out,
        features,
        paths,
        metadata=extractor.settings(),
        starts=np.concatenate(starts),
        ends=np.concatenate(ends),
    )
    shape = "x".join(str(n) for n in features.shape[1:])
    print(f"wrote {len(features)} embeddings ({shape}) to {args.out}")
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
    from beats_core.atomic import atomic_write_text
    from beats_core.audio_files import display_path
    from beats_core.errors import ConfigError
    from beats_extract.extractor import BEATsFeatureExtractor
    from beats_extract.queries import embed_queries, hits_csv, parse_query
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
        dtype=_index_dtype(meta) if args.dtype is None else args.dtype,
        batch_size=args.batch_size,
        num_workers=args.workers,
        window_seconds=meta.get("window_seconds", 10.0),
        hop_seconds=meta.get("hop_seconds"),
    )
    queries = [parse_query(text) for text in args.queries]
    results = index.search(embed_queries(queries, index, extractor), k=args.top)
    clips = meta.get("clip_seconds") is not None
    for query, hits in zip(queries, results, strict=True):
        print(query)
        for rank, hit in enumerate(hits, start=1):
            span = f"{hit.start:8.2f} - {hit.end:8.2f} s  " if clips else ""
            print(f"  {rank:>3}  {hit.score:7.4f}  {span}{display_path(hit.path)}")
    if args.output:
        atomic_write_text(args.output, hits_csv(queries, results))
        print(f"hits written to {args.output}: fill in the label column, then train on them")
    return 0


def _index_dtype(metadata: dict[str, Any]) -> str:
    """The precision an index's rows were made in, for its queries (``auto`` when it does not say)."""
    recorded = metadata.get("dtype")
    return recorded if recorded in ("float32", "bfloat16", "float16") else "auto"
