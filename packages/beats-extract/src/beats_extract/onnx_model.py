"""Run a BEATs model exported to ONNX (``beats export``) with onnxruntime, without torch.

An exported graph takes a padded batch of 16 kHz waveforms and the length of each row and
returns one vector per row: pooled embeddings for a pre-trained model, class probabilities
for a fine-tuned one (see :func:`beats_extract.export.export_onnx`). What the graph is and
where it came from travels in the file's ``metadata_props`` (:class:`OnnxMetadata`), so a
file is self-describing: :class:`OnnxModel` reads it, checks the inputs and runs the graph.

This module imports neither torch nor onnx; only numpy and, when a model is opened,
onnxruntime (``pip install 'beats-extract[onnx]'``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from beats_core.errors import CheckpointError, InvalidAudioError, MissingDependencyError

__all__ = ["ACTIVATIONS", "FORMAT_VERSION", "KINDS", "OnnxMetadata", "OnnxModel", "import_onnxruntime"]

#: The version of the layout of an exported graph (inputs, outputs, metadata keys).
FORMAT_VERSION = 1
#: What an exported graph returns: pooled embeddings (pre-trained) or class probabilities (fine-tuned).
KINDS = ("embeddings", "probabilities")
#: How a graph's logits become its output: none (embeddings), sigmoid or softmax (probabilities).
ACTIVATIONS = ("none", "sigmoid", "softmax")
_PREFIX = "beats."
_INSTALL = "pip install 'beats-extract[onnx]'"


def import_onnxruntime() -> ModuleType:
    """Import onnxruntime, or say how to install it.

    Returns:
        The ``onnxruntime`` module.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError as e:
        raise MissingDependencyError(
            f"running an ONNX model needs onnxruntime, which is not installed ({e}); {_INSTALL}"
        ) from e
    return onnxruntime


@dataclass(frozen=True)
class OnnxMetadata:
    """What an exported graph computes and where it came from, stored as the file's ``metadata_props``.

    Every field is stored under the key ``beats.<field>`` as a string (JSON for ``labels``
    and ``cfg``), so any ONNX tool, and code without beats, can read it.

    Attributes:
        kind: ``"embeddings"`` (pooled token features, pre-trained model) or
            ``"probabilities"`` (the official sigmoid of the mean token logits, fine-tuned model).
        output_dim: D or K, the size of each output row.
        labels: the K class labels in output order (fine-tuned models with labels), else None.
        pooling: how the tokens of a row become one vector (``"mean"`` for probabilities:
            the mean of the token logits).
        activation: how logits become probabilities: ``"sigmoid"`` (independent classes, the
            official output) or ``"softmax"`` (a single-label model of beats-train);
            ``"none"`` for embeddings.
        sample_rate: the sample rate the graph expects, in Hz (16000).
        min_samples: the shortest input length N the graph takes; shorter batches are
            zero-padded to it (the length of each row says where its clip ends).
        quantize: ``"none"`` or ``"int8"`` (dynamic quantization of the weight products).
        model: the model spec it was exported from (a name, a file, ``hf-hub:`` or ``random:``).
        checkpoint_sha256: SHA-256 of the checkpoint file, or ``""`` for a model without one.
        cfg: the model's ``BEATsConfig.to_dict()``.
        version: the version of beats-extract that exported it.
        exporter: the torch version whose exporter wrote the graph.
        opset: the ONNX opset of the graph.
        format_version: :data:`FORMAT_VERSION` of the writer.
    """

    kind: str
    output_dim: int
    labels: list[str] | None
    pooling: str
    activation: str
    sample_rate: int
    min_samples: int
    quantize: str
    model: str
    checkpoint_sha256: str
    cfg: dict[str, Any] = field(repr=False)
    version: str
    exporter: str
    opset: int
    format_version: int = FORMAT_VERSION

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries: ``{"beats.<field>": string}``."""
        props = {}
        for name, value in self.__dict__.items():
            text = json.dumps(value) if name in ("labels", "cfg") else str(value)
            props[_PREFIX + name] = text
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], origin: str) -> OnnxMetadata:
        """Read the metadata back from ``metadata_props``.

        Args:
            props: the file's metadata (key -> string).
            origin: how messages name the file.

        Returns:
            The metadata.

        Raises:
            CheckpointError: the file was not written by ``beats export``, by a newer
                version, or its metadata is damaged.
        """
        fix = "export the model again with `beats export MODEL -o FILE.onnx`"
        if _PREFIX + "format_version" not in props:
            raise CheckpointError(f"{origin!r} is an ONNX model but not one exported by beats; {fix}")
        try:
            version = int(props[_PREFIX + "format_version"])
            if version > FORMAT_VERSION:
                raise CheckpointError(
                    f"{origin!r} was exported in format {version}, newer than this beats-extract "
                    f"understands ({FORMAT_VERSION}); upgrade beats-extract"
                )
            values: dict[str, Any] = {}
            for name, kind in cls.__annotations__.items():
                text = props[_PREFIX + name]
                if name in ("labels", "cfg"):
                    values[name] = json.loads(text)
                elif kind == "int":
                    values[name] = int(text)
                else:
                    values[name] = text
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{origin!r} has damaged beats metadata ({e!r}); {fix}") from e
        metadata = cls(**values)
        if (
            metadata.kind not in KINDS
            or metadata.activation not in ACTIVATIONS
            or (metadata.activation == "none") != (metadata.kind == "embeddings")
            or (metadata.labels is not None and len(metadata.labels) != metadata.output_dim)
        ):
            raise CheckpointError(
                f"{origin!r} has inconsistent beats metadata (kind {metadata.kind!r}, activation "
                f"{metadata.activation!r}, "
                f"{metadata.output_dim} outputs, labels {metadata.labels!r}); {fix}"
            )
        return metadata


class OnnxModel:
    """A BEATs model exported by ``beats export``, run with onnxruntime.

    ``model(waveforms, lengths)`` returns one row per clip: pooled embeddings or class
    probabilities (see :attr:`metadata`). A padded row gives what its clip alone gives.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers, in order of preference
            (default: ``["CPUExecutionProvider"]``).
        threads: threads for one operator (onnxruntime's ``intra_op_num_threads``;
            default: onnxruntime's choice, the physical cores).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        CheckpointError: the file is missing, is not an ONNX model, or was not exported
            by beats.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: list[str] | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        onnxruntime = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model {str(self.path)!r} not found; export one with `beats export`")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own classes for unreadable files
            raise CheckpointError(f"{str(self.path)!r} is not an ONNX model onnxruntime can load: {e}") from e
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = OnnxMetadata.from_props(props, str(self.path))
        names = [node.name for node in self.session.get_inputs()]
        if names != ["waveforms", "lengths"]:
            raise CheckpointError(
                f"{str(self.path)!r} takes inputs {names}, not (waveforms, lengths); "
                "export the model again with `beats export`"
            )

    @property
    def output_dim(self) -> int:
        """The size of each output row: D (embeddings) or K (probabilities)."""
        return self.metadata.output_dim

    @property
    def labels(self) -> list[str] | None:
        """The class labels in output order, for a fine-tuned model that has them."""
        return self.metadata.labels

    def __repr__(self) -> str:
        meta = self.metadata
        return (
            f"OnnxModel({str(self.path)!r}, kind={meta.kind!r}, output_dim={meta.output_dim}, "
            f"quantize={meta.quantize!r}, model={meta.model!r})"
        )

    def __call__(self, waveforms: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Run the graph on a padded batch.

        Args:
            waveforms: ``(B, N)`` float samples in [-1, 1] at :attr:`OnnxMetadata.sample_rate`
                (16 kHz), each row zero-padded at the end to the longest.
            lengths: ``(B,)`` integers, the samples of each row before padding
                (1 <= length <= N); ``None`` when no row is padded.

        Returns:
            float32 ``(B, output_dim)``.

        Raises:
            InvalidAudioError: the waveforms are not a 2-D float array of finite values,
                or the lengths do not fit them.
        """
        waveforms, lengths = _check_batch(waveforms, lengths)
        if waveforms.shape[0] == 0:
            return np.zeros((0, self.output_dim), dtype=np.float32)
        shortfall = self.metadata.min_samples - waveforms.shape[1]
        if shortfall > 0:  # a batch of clips shorter than one time step: pad, the lengths say where they end
            waveforms = np.pad(waveforms, ((0, 0), (0, shortfall)))
        (output,) = self.session.run(None, {"waveforms": waveforms, "lengths": lengths})
        return output


def _check_batch(waveforms: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(waveforms)
    if array.ndim != 2:
        raise InvalidAudioError(
            f"waveforms must be a (batch, samples) array, got shape {array.shape}; "
            "add a batch axis with x[None] for one clip"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidAudioError(
            f"waveforms must be float samples in [-1, 1], got dtype {array.dtype}; "
            "convert 16-bit PCM with x.astype(np.float32) / 32768"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        rows = np.flatnonzero(~np.isfinite(array).all(axis=1)).tolist()
        raise InvalidAudioError(f"waveforms of batch row(s) {rows} contain NaN or infinite samples")
    batch, num_samples = array.shape
    if lengths is None:
        return array, np.full(batch, num_samples, dtype=np.int64)
    sizes = np.asarray(lengths)
    if sizes.shape != (batch,) or not (np.issubdtype(sizes.dtype, np.integer) or batch == 0):
        raise InvalidAudioError(
            f"lengths must be {batch} integers (one per row of the waveforms), "
            f"got shape {sizes.shape} and dtype {sizes.dtype}"
        )
    bad = np.flatnonzero((sizes < 1) | (sizes > num_samples)).tolist()
    if bad:
        raise InvalidAudioError(
            f"lengths of batch row(s) {bad} are {sizes[bad].tolist()}: each must be between 1 and "
            f"the padded length {num_samples}; leave empty clips out of the batch"
        )
    return array, sizes.astype(np.int64)
