"""The HEAR benchmark API for BEATs, so that hear-eval-kit evaluates BEATs as it is.

`HEAR <https://hearbenchmark.com/hear-api.html>`_ (Holistic Evaluation of Audio
Representations) evaluates any module that has these three functions::

    python3 -m heareval.embeddings.runner beats_extract.hear --tasks-dir tasks
    python3 -m heareval.embeddings.runner beats_extract.hear --model tuned.pt --model-options '{"layer": 8}'

* :func:`load_model` returns a ``torch.nn.Module`` with ``sample_rate`` (16000),
  ``scene_embedding_size`` and ``timestamp_embedding_size``;
* :func:`get_scene_embeddings` maps audio ``(n_sounds, n_samples)`` to ``(n_sounds, D)``:
  the mean over the clip's tokens (long clips in 10 s windows, pooled over windows);
* :func:`get_timestamp_embeddings` returns ``(n_sounds, n_timestamps, D)`` embeddings and
  their timestamps ``(n_sounds, n_timestamps)`` in milliseconds, each the centre of the
  audio its embedding describes.

BEATs has one time step every 160 ms (16 fbank frames of 10 ms). HEAR suggests a hop of
at most 50 ms, so by default the model is run on the audio shifted by 0, 40, 80 and 120 ms
and the four sequences are interleaved: timestamps every 40 ms, the first at 87.5 ms
(the centre of the first 175 ms patch), at four times the compute of one pass.
``load_model(timestamp_hop_ms=160)`` gives the native steps in one pass.

The harness moves the model to its device (``model.to("cuda")``) and passes audio there;
embeddings come back on the audio's device as float32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from beats_core.errors import ConfigError, InvalidAudioError
from beats_core.factory import create_model
from beats_core.geometry import step_samples
from beats_core.model import BEATs
from beats_extract.extractor import BEATsFeatureExtractor, FrameEmbeddings, LayerSelection

__all__ = ["BEATsHEARModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]


class BEATsHEARModel(nn.Module):
    """A BEATs model with the attributes HEAR asks for.

    Args:
        beats: the BEATs model (a submodule, so that ``.to(device)`` moves it).
        layer: the hidden state(s) to embed, as in :class:`BEATsFeatureExtractor`
            (``"all"`` is not allowed: HEAR wants one vector per sound or timestamp).
        timestamp_hop_ms: milliseconds between timestamp embeddings; must divide 160
            (160, 80, 40, 32, 20, ...). The model runs ``160 / timestamp_hop_ms`` times.
        window_seconds: longer sounds are embedded window by window.
        batch_size: clips or windows per forward pass.

    Attributes:
        sample_rate: 16000 Hz.
        scene_embedding_size: D of :func:`get_scene_embeddings`.
        timestamp_embedding_size: D of :func:`get_timestamp_embeddings`.

    Raises:
        ConfigError: a bad ``layer`` or ``timestamp_hop_ms``.
    """

    sample_rate = 16000

    def __init__(
        self,
        beats: BEATs,
        *,
        layer: LayerSelection = -1,
        timestamp_hop_ms: float = 40.0,
        window_seconds: float = 10.0,
        batch_size: int = 16,
    ) -> None:
        super().__init__()
        if layer == "all":
            raise ConfigError("HEAR embeddings are vectors: pick one layer or a list of layers, not 'all'")
        self.beats = beats
        step = step_samples(beats.cfg.input_patch_size)
        step_ms = 1000 * step / self.sample_rate
        passes = step_ms / timestamp_hop_ms if timestamp_hop_ms > 0 else 0
        if passes < 1 or passes != int(passes) or step % int(passes):
            raise ConfigError(
                f"timestamp_hop_ms={timestamp_hop_ms:g} must divide the {step_ms:g} ms time step of BEATs "
                "into a whole number of whole-sample shifts (160, 80, 40, 32, 20, ...)"
            )
        self.timestamp_hop_ms = float(timestamp_hop_ms)
        self.passes = int(passes)
        self.shift_samples = step // self.passes
        options = {
            "layer": layer,
            "window_seconds": window_seconds,
            "batch_size": batch_size,
            "num_workers": 0,
        }
        self._scene = BEATsFeatureExtractor(beats, pooling="mean", **options)
        self._frames = BEATsFeatureExtractor(beats, pooling=None, **options)
        self.scene_embedding_size = self._scene.get_feature_dim()
        self.timestamp_embedding_size = self._frames.get_feature_dim()


def load_model(model_file_path: str = "", **options: object) -> BEATsHEARModel:
    """Load a BEATs model for HEAR.

    Args:
        model_file_path: a checkpoint file or a registered model name; ``""`` for the
            default model (:data:`beats_core.registry.DEFAULT_MODEL`, downloaded and cached).
        **options: ``layer``, ``timestamp_hop_ms``, ``window_seconds``, ``batch_size`` of
            :class:`BEATsHEARModel`.

    Returns:
        The model, in eval mode, on the CPU (the harness moves it).

    Raises:
        CheckpointError: the checkpoint cannot be loaded or downloaded.
        ConfigError: a bad option.
    """
    from beats_core.registry import DEFAULT_MODEL

    beats = create_model(model_file_path or DEFAULT_MODEL)
    return BEATsHEARModel(beats, **options).eval()  # type: ignore[arg-type]


def _check_audio(audio: Tensor) -> None:
    if not isinstance(audio, Tensor) or audio.ndim != 2:
        shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
        raise InvalidAudioError(f"HEAR audio must be a tensor (n_sounds, n_samples) at 16 kHz, got {shape}")
    if audio.shape[1] == 0:
        raise InvalidAudioError("HEAR audio has zero samples per sound")


def get_scene_embeddings(audio: Tensor, model: BEATsHEARModel) -> Tensor:
    """One embedding per sound: the mean of the encoder's tokens over the whole sound.

    Args:
        audio: float ``(n_sounds, n_samples)``, mono, in [-1, 1], at 16 kHz.
        model: from :func:`load_model`.

    Returns:
        float32 ``(n_sounds, model.scene_embedding_size)``, on ``audio``'s device.

    Raises:
        InvalidAudioError: ``audio`` is not a 2-D float tensor or has NaN/infinite samples.
    """
    _check_audio(audio)
    embeddings = model._scene.extract_from_arrays(audio)
    return torch.from_numpy(np.asarray(embeddings, dtype=np.float32)).to(audio.device)


def get_timestamp_embeddings(audio: Tensor, model: BEATsHEARModel) -> tuple[Tensor, Tensor]:
    """Embeddings at regular timestamps, each centred on the audio it describes.

    Pass ``j`` of the ``model.passes`` passes runs the model on the sound without its first
    ``j * hop`` ms, so its time step ``m`` is centred at ``87.5 + 160 m + j * hop`` ms; the
    passes interleave into one sequence every ``hop`` ms, ending where the shortest pass
    ends. Each embedding is the step's 8 tokens averaged over frequency.

    Args:
        audio: float ``(n_sounds, n_samples)``, mono, in [-1, 1], at 16 kHz.
        model: from :func:`load_model`.

    Returns:
        ``(embeddings, timestamps)``: float32 ``(n_sounds, n_timestamps,
        model.timestamp_embedding_size)`` and float32 ``(n_sounds, n_timestamps)`` in
        milliseconds (the same for every sound), both on ``audio``'s device.

    Raises:
        InvalidAudioError: ``audio`` is not a 2-D float tensor or has NaN/infinite samples.
    """
    _check_audio(audio)
    n_sounds = audio.shape[0]
    sequences: list[np.ndarray] = []
    for j in range(model.passes):
        shifted = audio[:, j * model.shift_samples :]
        if shifted.shape[1] == 0:
            sequences.append(np.zeros((n_sounds, 0, model.timestamp_embedding_size), np.float32))
            continue
        frames: list[FrameEmbeddings] = model._frames.extract_from_arrays(shifted)  # type: ignore[assignment]
        sequences.append(np.stack([f.embeddings for f in frames]))
    passes = model.passes
    count = min(seq.shape[1] * passes + j for j, seq in enumerate(sequences))
    embeddings = np.zeros((n_sounds, count, model.timestamp_embedding_size), np.float32)
    for j, seq in enumerate(sequences):
        embeddings[:, j::passes] = seq[:, : len(range(j, count, passes))]
    first_ms = 1000 * model.beats.min_num_samples / 2 / model.sample_rate
    timestamps = first_ms + model.timestamp_hop_ms * np.arange(count, dtype=np.float64)
    timestamps = np.broadcast_to(timestamps.astype(np.float32), (n_sounds, count)).copy()
    return torch.from_numpy(embeddings).to(audio.device), torch.from_numpy(timestamps).to(audio.device)
