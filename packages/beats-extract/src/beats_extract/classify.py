"""A fine-tuned checkpoint as a clip classifier: its head applied to clip embeddings, and ``predict`` per file.

A fine-tuned BEATs checkpoint classifies a clip by applying its linear head (``predictor``) to
every token and averaging the token logits (:meth:`beats_core.model.BEATs.forward_head`). The
head is linear, so that average is the head applied to the mean of the tokens: the
:class:`ClipClassifier` classifies the mean-pooled embedding of each clip, as
:class:`~beats_extract.extractor.BEATsFeatureExtractor` computes it (every clip alone, in
bounded memory, batched, decoded in worker processes) or as a store holds it, and gives the
checkpoint's own output for that clip.

What the output is depends on the checkpoint:

* an official fine-tuned checkpoint (Microsoft's AudioSet models, or any without beats-train's
  additions): independent sigmoids of the logits, the official ``BEATs.extract_features``;
* a checkpoint written by beats-train, which adds ``cfg["beats_train"]``: ``multi_label``
  (True: sigmoids; False: a softmax over the classes, what beats-train's ``predict`` gives),
  ``layer_weights`` (the head then reads the softmax-weighted sum of the L + 1 hidden states
  instead of the last one) and, when recorded, ``max_duration``, the clip length it was trained on.

Labels that are AudioSet ids (``/m/09x0r``) are shown by their display names ("Speech",
:mod:`beats_core.audioset`), with the ids kept in a ``label_id`` column.

A classifier exported by ``beats export`` (an ``.onnx`` file) is an :class:`OnnxClipClassifier`:
the graph gives each clip's probabilities itself, through onnxruntime; :func:`open_classifier`
takes either.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from beats_core.audioset import display_names, is_audioset_id
from beats_core.clips import ClipRule
from beats_core.devices import resolve_device
from beats_core.errors import CheckpointError, ConfigError, StoreError
from beats_core.factory import create_model, encoder_sha256
from beats_core.geometry import SAMPLE_RATE
from beats_core.model import BEATs
from beats_extract.extractor import BEATsFeatureExtractor
from beats_extract.onnx_model import OnnxModel

__all__ = [
    "DEFAULT_CLIP_SECONDS",
    "TRAINING_EXTRAS_KEY",
    "ClipClassifier",
    "OnnxClipClassifier",
    "open_classifier",
]

#: The key of a checkpoint's cfg under which beats-train records what the official format cannot hold.
TRAINING_EXTRAS_KEY = "beats_train"
#: The clip length of a checkpoint that does not record the one it was trained on (BEATs' own: 10 s).
DEFAULT_CLIP_SECONDS = 10.0


class ClipClassifier:
    """A fine-tuned BEATs checkpoint that classifies clips from their mean-pooled embeddings.

    Args:
        model: a fine-tuned checkpoint: a file, a registered name or ``hf-hub:owner/name``
            (see :func:`beats_core.create_model`), or a :class:`~beats_core.model.BEATs` with a
            head (used as is, not copied).
        device: where a checkpoint is loaded and runs: ``"auto"`` (CUDA, then MPS, then the
            CPU; a ``BEATs`` instance stays where it is) or a device.
        multi_label: independent sigmoids (True) or a softmax over the classes (False);
            default: the checkpoint's ``beats_train`` record, else sigmoids (the official output).
        layer_weights: ``L + 1`` weights of the hidden states the head reads (normalised to sum
            to 1); default: the checkpoint's record, else the last layer alone.
        clip_seconds: the clip length the checkpoint was trained on; default: its record
            (``max_duration``), else :data:`DEFAULT_CLIP_SECONDS`.

    Raises:
        ConfigError: the checkpoint has no classifier head (the message says how to get one),
            or an argument is out of range.
        CheckpointError: the checkpoint cannot be loaded, or its ``beats_train`` record is invalid.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | BEATs,
        *,
        device: str | torch.device = "auto",
        multi_label: bool | None = None,
        layer_weights: Sequence[float] | None = None,
        clip_seconds: float | None = None,
    ) -> None:
        #: The exported graph that classifies the clips itself (an :class:`OnnxClipClassifier`'s), else None.
        self.graph: OnnxModel | None = None
        if isinstance(model, BEATs):
            self.name = "the model" if model.checkpoint_path is None else str(model.checkpoint_path)
            self.model = model
            if device != "auto":
                self.model.to(resolve_device(device))
        elif isinstance(model, (str, os.PathLike)):
            self.name = os.fspath(model)
            self.model = create_model(self.name, map_location=resolve_device(device))
        else:
            raise ConfigError(
                f"model must be a checkpoint file, a model name or a BEATs instance, got {type(model).__name__}"
            )
        head = self.model.predictor
        if head is None:
            raise ConfigError(
                f"{self.name!r} is a pre-trained checkpoint without a classifier head, so it cannot say which "
                "sound a clip holds. Fine-tune it on labelled clips first, e.g. `beats train my_sounds/ --model "
                f"{self.name} --freeze-backbone` (a linear probe, fast on a CPU; leave out --freeze-backbone to "
                "train every layer), then use the run's best_model.pt; for embeddings use `beats extract`"
            )
        extras = self.model.cfg.extra.get(TRAINING_EXTRAS_KEY)
        extras = extras if isinstance(extras, Mapping) else {}
        self.multi_label = bool(extras.get("multi_label", True)) if multi_label is None else bool(multi_label)
        self.layer_weights = self._layer_weights(
            extras.get("layer_weights") if layer_weights is None else layer_weights
        )
        self.clip_seconds = self._clip_seconds(
            extras.get("max_duration") if clip_seconds is None else clip_seconds, clip_seconds is None
        )
        label_dict = self.model.label_dict or {}
        #: The checkpoint's labels, in class order (its ``label_dict``; the class index where it has none).
        self.labels: list[str] = [label_dict.get(k, str(k)) for k in range(head.out_features)]
        #: What outputs show: AudioSet ids as display names, other labels as they are.
        self.names: list[str] = display_names(self.labels)
        #: The labels when some are AudioSet ids (outputs keep them in a ``label_id`` column), else None.
        self.label_ids: list[str] | None = (
            self.labels if any(is_audioset_id(label) for label in self.labels) else None
        )
        self.weight = head.weight.detach().to("cpu", torch.float32)
        self.bias = head.bias.detach().to("cpu", torch.float32)

    # ------------------------------------------------------------------ description
    @property
    def num_classes(self) -> int:
        """The number of classes K."""
        return len(self.labels)

    @property
    def layer(self) -> int | str:
        """The hidden states the head reads, as the extractor's ``layer``: ``-1``, or ``"all"`` with layer weights."""
        return -1 if self.layer_weights is None else "all"

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one clip's embedding the head reads: ``(C,)``, or ``(L + 1, C)`` with layer weights."""
        width = self.model.embed_dim
        return (width,) if self.layer_weights is None else (len(self.layer_weights), width)

    @functools.cached_property
    def encoder_fingerprint(self) -> str:
        """The encoder's fingerprint (:func:`beats_core.factory.encoder_sha256`), computed once."""
        return encoder_sha256(self.model)

    def fingerprint(self) -> str:
        """A SHA-256 of everything that makes this classifier's outputs: encoder, head, labels, activation, layers."""
        digest = hashlib.sha256(self.encoder_fingerprint.encode())
        digest.update(self.weight.numpy().tobytes())
        digest.update(self.bias.numpy().tobytes())
        digest.update(repr((self.labels, self.multi_label)).encode())
        if self.layer_weights is not None:
            digest.update(self.layer_weights.tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------ classification
    def feature_extractor(
        self,
        *,
        clip_seconds: float | None,
        clip_overlap: float = 0.0,
        dtype: str | torch.dtype | None = "auto",
        batch_size: int = 16,
        num_workers: int | None = None,
    ) -> BEATsFeatureExtractor:
        """The extractor that gives the embeddings this classifier reads, each clip embedded whole and alone.

        Args:
            clip_seconds: the clip length (the one clip rule); ``None``: each recording one clip.
            clip_overlap: seconds shared by consecutive clips.
            dtype: the precision (see :class:`~beats_extract.extractor.BEATsFeatureExtractor`).
            batch_size: clips per forward pass.
            num_workers: decoding processes (default: the extractor's).

        Returns:
            A mean-pooling extractor of the layers the head reads, on the model's device (for an
            :class:`OnnxClipClassifier`, on the graph, whose rows are the clips' probabilities;
            ``dtype`` does not apply to it).
        """
        return BEATsFeatureExtractor(
            self.model if self.graph is None else self.graph,
            pooling="mean",
            layer=self.layer,
            dtype=dtype,
            batch_size=batch_size,
            num_workers=num_workers,
            window_seconds=None,
            clip_seconds=clip_seconds,
            clip_overlap=clip_overlap,
        )

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The head's logits of clips from their mean-pooled embeddings.

        Args:
            features: float ``(n, C)``, or ``(n, L + 1, C)`` (also flattened to ``(n, (L + 1) C)``,
                as a store holds it) for a checkpoint with layer weights.

        Returns:
            float32 ``(n, K)``.

        Raises:
            ConfigError: the embeddings do not have the shape the head reads.
        """
        features = np.asarray(features, dtype=np.float32)
        shape = self.feature_shape
        if features.ndim < 2 or features.shape[1:] not in (shape, (math.prod(shape),)):
            raise ConfigError(
                f"the head of {self.name!r} reads embeddings of shape {shape} per clip (mean-pooled, "
                f"layer {self.layer!r}), got {features.shape[1:]}"
            )
        pooled = torch.from_numpy(features.reshape(len(features), *shape))
        if self.layer_weights is not None:
            pooled = torch.tensordot(pooled, torch.from_numpy(self.layer_weights), dims=([1], [0]))
        return torch.nn.functional.linear(pooled, self.weight, self.bias).numpy()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The checkpoint's output from logits: independent sigmoids, or a softmax over the classes.

        Args:
            logits: float ``(n, K)``.

        Returns:
            float32 ``(n, K)`` in [0, 1].
        """
        tensor = torch.from_numpy(np.asarray(logits, dtype=np.float32))
        return (torch.sigmoid(tensor) if self.multi_label else torch.softmax(tensor, dim=-1)).numpy()

    def classify(self, features: np.ndarray) -> np.ndarray:
        """The checkpoint's output for clips, from their mean-pooled embeddings (see :meth:`logits`).

        Args:
            features: the clips' embeddings, ``(n, *feature_shape)``.

        Returns:
            float32 ``(n, K)`` probabilities.
        """
        return self.probabilities(self.logits(features))

    def check_embeddings(self, settings: Mapping[str, Any], source: str) -> None:
        """Check that stored embeddings are those this classifier reads.

        Args:
            settings: how they were made (a store manifest's ``settings``).
            source: how messages name them (the store's folder).

        Raises:
            StoreError: another encoder, pooling, layer or shape, or clips processed in several
                windows; the message names each difference and how to embed them again.
        """
        problems = []
        if settings.get("encoder_sha256") != self.encoder_fingerprint:
            problems.append(
                f"they come from another encoder ({settings.get('model')!r}) than {self.name!r}'s "
                "(embeddings from the pre-trained model serve a checkpoint only if training froze the encoder)"
            )
        if settings.get("pooling") != "mean":
            problems.append(f"pooling is {settings.get('pooling')!r}, the head reads 'mean'")
        layer = "all" if self.layer_weights is not None else [len(self.model.encoder.layers)]
        if settings.get("layer") != layer:
            problems.append(f"layer is {settings.get('layer')!r}, the head reads {layer!r}")
        if settings.get("feature_shape") is not None and list(settings["feature_shape"]) != list(
            self.feature_shape
        ):
            problems.append(
                f"embeddings have shape {settings['feature_shape']}, the head reads {list(self.feature_shape)}"
            )
        window, clip = settings.get("window_seconds"), settings.get("clip_seconds")
        if window is not None and (clip is None or round(window * SAMPLE_RATE) < round(clip * SAMPLE_RATE)):
            problems.append(
                f"clips longer than the {window:g} s windows were embedded window by window, not whole"
            )
        if problems:
            layer_option = " --layer all" if self.layer_weights is not None else ""
            raise StoreError(
                f"the embeddings in {source!r} cannot be classified by {self.name!r}: {'; '.join(problems)}. "
                f"Embed the recordings with `beats extract RECORDINGS -o STORE --model {self.name} "
                f"--clip-seconds S --clip-overlap O{layer_option}` (pooling mean, windows at least as long "
                "as the clips), or detect from the audio"
            )

    # ------------------------------------------------------------------ files
    def predict(
        self,
        files: Iterable[str | os.PathLike[str]],
        *,
        clip_seconds: float | None = None,
        dtype: str | torch.dtype | None = "auto",
        batch_size: int = 16,
        num_workers: int | None = None,
        delimiter: str = ",",
        threshold: float = 0.5,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Classify audio files, one row per file: the checkpoint's output averaged over the file's windows.

        A file is cut into windows of the checkpoint's clip length (the windows of
        :meth:`beats_core.clips.ClipRule.windows`, the ones beats-train evaluates long clips
        in); each window is classified alone, the windows' logits are averaged, and the
        average goes through the checkpoint's sigmoid or softmax.

        Args:
            files: audio files (any format and sample rate).
            clip_seconds: the window length; default: :attr:`clip_seconds`.
            dtype: the precision (see :class:`~beats_extract.extractor.BEATsFeatureExtractor`).
            batch_size: windows per forward pass.
            num_workers: decoding processes (default: the extractor's).
            delimiter: joins the labels of a multi-label prediction.
            threshold: a multi-label prediction holds every class with a probability at least this.
            progress: show a progress bar in seconds of audio (default: for more files than a batch).

        Returns:
            One row per file, in order: ``filename`` (as given), ``label`` (the most likely class;
            multi-label: every class at or above ``threshold``, joined by ``delimiter``),
            ``probability`` (the highest), ``label_id`` (the AudioSet ids of ``label``, for
            checkpoints whose labels are AudioSet ids), and ``prob_<label>`` per class. A file
            that cannot be decoded gets an empty label and NaN probabilities, and a
            :class:`~beats_extract.extractor.SkippedFileWarning` naming it.

        Raises:
            ConfigError: a setting is out of range.
        """
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        names = [os.fspath(path) for path in files]
        windows = ClipRule.windows(self.clip_seconds if clip_seconds is None else clip_seconds)
        extractor = self.feature_extractor(
            clip_seconds=windows.clip_seconds,
            clip_overlap=windows.clip_seconds - windows.hop_samples / SAMPLE_RATE,
            dtype=dtype,
            batch_size=batch_size,
            num_workers=num_workers,
        )
        probabilities = np.full((len(names), self.num_classes), np.nan, dtype=np.float32)
        for result in extractor.stream_from_files(names, on_error="skip", progress=progress):
            if result.features is not None:
                logits = self.logits(result.features.features).astype(np.float64).mean(axis=0)
                probabilities[result.index] = self.probabilities(logits[None].astype(np.float32))[0]
        return self._prediction_table(names, probabilities, delimiter, threshold)

    def _prediction_table(
        self, names: list[str], probabilities: np.ndarray, delimiter: str, threshold: float
    ) -> pd.DataFrame:
        """One row per file from its probabilities (a row of NaN for a file that could not be decoded).

        Text columns are ``object`` columns: pandas' string columns refuse file and class names
        that are not valid UTF-8 (surrogate escapes), which are kept as they are.
        """
        chosen: list[list[int]] = []
        for row in probabilities:
            if np.isnan(row).any():
                chosen.append([])
            elif self.multi_label:
                chosen.append(np.flatnonzero(row >= threshold).tolist())
            else:
                chosen.append([int(np.argmax(row))])
        table = pd.DataFrame(
            {
                "filename": pd.Series(names, dtype=object),
                "label": pd.Series(
                    [delimiter.join(self.names[k] for k in picked) for picked in chosen], dtype=object
                ),
                "probability": probabilities.max(axis=1),
            }
        )
        if self.label_ids is not None:
            table["label_id"] = [delimiter.join(self.label_ids[k] for k in picked) for picked in chosen]
        for k, name in enumerate(self.names):
            table[f"prob_{name}"] = probabilities[:, k]
        return table

    # ------------------------------------------------------------------ checkpoint records
    def _layer_weights(self, weights: Sequence[float] | None) -> np.ndarray | None:
        if weights is None:
            return None
        count = len(self.model.encoder.layers) + 1
        values = np.asarray(weights, dtype=np.float64).reshape(-1)
        if (
            values.shape != (count,)
            or not np.isfinite(values).all()
            or (values < 0).any()
            or values.sum() <= 0
        ):
            raise CheckpointError(
                f"{self.name!r}: layer_weights must be {count} non-negative numbers (one per hidden state of its "
                f"{count - 1} layers), got {list(np.asarray(weights).reshape(-1))[:20]}; save the model again"
            )
        values = np.maximum(values, 1e-12)  # as beats-train's classifier takes them
        return (values / values.sum()).astype(np.float32)

    def _clip_seconds(self, seconds: Any, recorded: bool) -> float:
        if seconds is None:
            return DEFAULT_CLIP_SECONDS
        valid = isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds)
        if valid and seconds > 0:
            return float(seconds)
        if recorded:
            warnings.warn(
                f"{self.name!r} records a training clip length of {seconds!r}, which is not a number of seconds; "
                f"using {DEFAULT_CLIP_SECONDS:g} s",
                stacklevel=3,
            )
            return DEFAULT_CLIP_SECONDS
        raise ConfigError(f"clip_seconds must be a positive number of seconds, got {seconds!r}")


class OnnxClipClassifier(ClipClassifier):
    """A fine-tuned model exported by ``beats export`` (``.onnx``), run by onnxruntime on the CPU.

    The graph gives each clip the checkpoint's probabilities itself (its layer mix and its
    sigmoid or softmax, recorded in the file's metadata), so :meth:`classify` takes the rows of a
    :meth:`feature_extractor` as they are. :meth:`predict` averages the windows' logits as the
    checkpoint's classifier does, recovering them from the probabilities (exact but for
    probabilities that float32 rounds to 0 or 1).

    Args:
        path: the ``.onnx`` file.
        clip_seconds: the clip length; default: the one the checkpoint recorded, else
            :data:`DEFAULT_CLIP_SECONDS`.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        CheckpointError: the file cannot be loaded or was not exported by beats.
        ConfigError: the file is an export of a pre-trained model (embeddings, no classes).
    """

    def __init__(self, path: str | os.PathLike[str], *, clip_seconds: float | None = None) -> None:
        self.name = os.fspath(path)
        self.graph = OnnxModel(path)
        meta = self.graph.metadata
        if meta.kind != "probabilities":
            raise ConfigError(
                f"{self.name!r} is an export of a pre-trained model (embeddings), which cannot say which sound a "
                "clip holds; export a fine-tuned checkpoint (`beats export best_model.pt -o classifier.onnx`), "
                "or use this file with `beats extract`"
            )
        extras = meta.cfg.get(TRAINING_EXTRAS_KEY)
        extras = extras if isinstance(extras, Mapping) else {}
        self.model = None
        self.multi_label = meta.activation == "sigmoid"
        self.layer_weights = None
        self.clip_seconds = self._clip_seconds(
            extras.get("max_duration") if clip_seconds is None else clip_seconds, clip_seconds is None
        )
        self.labels = list(meta.labels) if meta.labels else [str(k) for k in range(meta.output_dim)]
        self.names = display_names(self.labels)
        self.label_ids = self.labels if any(is_audioset_id(label) for label in self.labels) else None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one clip's row of the graph: ``(K,)`` probabilities."""
        return (self.num_classes,)

    @functools.cached_property
    def encoder_fingerprint(self) -> str:
        """The SHA-256 of the ONNX file (its encoder is inside it, in its own precision)."""
        from beats_core.download import file_sha256

        return file_sha256(self.graph.path)

    def fingerprint(self) -> str:
        """The SHA-256 of the ONNX file and the labels shown."""
        return hashlib.sha256(f"{self.encoder_fingerprint}{self.labels!r}".encode()).hexdigest()

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits that give the graph's probabilities again (sigmoid: log-odds; softmax: log-probabilities).

        Args:
            features: float ``(n, K)`` probabilities of the graph.

        Returns:
            float32 ``(n, K)``.
        """
        probabilities = self.classify(features).astype(np.float64)
        tiny = float(np.finfo(np.float32).tiny)
        if self.multi_label:
            clipped = np.clip(probabilities, tiny, 1.0 - float(np.finfo(np.float32).epsneg))
            return (np.log(clipped) - np.log1p(-clipped)).astype(np.float32)
        return np.log(np.maximum(probabilities, tiny)).astype(np.float32)

    def classify(self, features: np.ndarray) -> np.ndarray:
        """The graph's probabilities for clips, as a :meth:`feature_extractor` gives them.

        Args:
            features: float ``(n, K)``.

        Returns:
            float32 ``(n, K)``.

        Raises:
            ConfigError: the rows are not ``K`` probabilities.
        """
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.num_classes:
            raise ConfigError(
                f"{self.name!r} gives {self.num_classes} probabilities per clip, got rows of shape {features.shape[1:]}"
            )
        return features

    def check_embeddings(self, settings: Mapping[str, Any], source: str) -> None:
        """Refuse stored embeddings: the graph classifies audio, the head is inside it.

        Raises:
            StoreError: always; the message says what works.
        """
        raise StoreError(
            f"{self.name!r} is an ONNX classifier: it classifies audio, not the embeddings in {source!r}. "
            "Detect from the audio with it, or from the store with the checkpoint it was exported from"
        )


def open_classifier(
    model: str | os.PathLike[str] | BEATs | ClipClassifier, *, device: str | torch.device = "auto"
) -> ClipClassifier:
    """The clip classifier of a fine-tuned model: a checkpoint (a file, a name, ``hf-hub:``), a ``BEATs`` or an ``.onnx`` export.

    Args:
        model: the model; a :class:`ClipClassifier` is returned as it is.
        device: where a checkpoint runs (see :class:`ClipClassifier`); an ONNX file runs on the CPU.

    Returns:
        An :class:`OnnxClipClassifier` for an ``.onnx`` file, else a :class:`ClipClassifier`.

    Raises:
        ConfigError: the model has no classifier head.
        CheckpointError: the model cannot be loaded.
    """
    if isinstance(model, ClipClassifier):
        return model
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx"):
        return OnnxClipClassifier(model)
    return ClipClassifier(model, device=device)
