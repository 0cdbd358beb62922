"""``beats export``: a model to an ONNX file for onnxruntime, in float32 or int8.

Wraps :func:`~beats_extract.export.export_onnx`. Heavy modules are imported when the
command runs, so ``beats --help`` stays fast.
"""

from __future__ import annotations

import argparse

from beats_core.hookspecs import SubParsers

__all__ = ["add_export_command", "run_export"]


def add_export_command(subparsers: SubParsers) -> None:
    """Add ``export`` to the ``beats`` parser.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    export = subparsers.add_parser(
        "export",
        help="export a model to ONNX (float32 or int8) for onnxruntime",
        description=(
            "Export a model to one ONNX file that takes a padded batch of 16 kHz waveforms (float32, "
            "batch x samples) and the length of each row (int64) and returns pooled embeddings (a "
            "pre-trained model) or class probabilities (a fine-tuned one). The fbank is inside the "
            "graph; the labels and the model's provenance are in its metadata."
        ),
    )
    export.add_argument(
        "model",
        metavar="MODEL",
        help="a model from `beats models`, a checkpoint file, hf-hub:owner/name or random:SIZE",
    )
    export.add_argument("-o", "--out", required=True, help="the .onnx file to write")
    export.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="int8: dynamic quantization of the weight products (smaller, faster on CPUs); default float32",
    )
    export.add_argument(
        "--pooling",
        default="mean",
        help="how a pre-trained model's tokens become one vector: mean (default), max, first, last, meanstd",
    )
    export.add_argument(
        "--opset", type=int, default=None, help="the ONNX opset (default: the exporter's; >= 18)"
    )
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Run ``beats export``.

    Args:
        args: the parsed arguments of :func:`add_export_command`.

    Returns:
        0.
    """
    from beats_extract.export import export_onnx
    from beats_extract.onnx_model import OnnxModel

    path = export_onnx(
        args.model, args.out, quantize=args.quantize, pooling=args.pooling, opset=args.opset, progress=True
    )
    meta = OnnxModel(path).metadata
    output = (
        f"{meta.output_dim} class probabilities"
        if meta.kind == "probabilities"
        else f"{meta.output_dim}-d {meta.pooling} embeddings"
    )
    size = path.stat().st_size / 1e6
    print(
        f"wrote {path} ({meta.quantize if meta.quantize != 'none' else 'float32'}, {output}, opset {meta.opset}, {size:.1f} MB)"
    )
    return 0
