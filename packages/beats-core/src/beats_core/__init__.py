"""beats-core: the BEATs audio transformer, its preprocessing, checkpoints and plugins.

The public API is importable from the package root. Names are resolved lazily, so
``import beats_core`` (and the ``beats`` command) stays fast until a model is
actually needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beats_core.__about__ import __version__
from beats_core.errors import (
    AudioDecodeError,
    AudioTooShortError,
    BeatsError,
    CheckpointError,
    ConfigError,
    DatasetError,
    DiskFullError,
    HubError,
    InvalidAudioError,
    MissingDependencyError,
    PluginError,
    PluginWarning,
    StoreError,
    TrainingError,
    UnknownLoaderError,
    UnknownModelError,
    UnknownNameError,
    UnknownPoolingError,
    UnknownPresetError,
)
from beats_core.hookspecs import hookimpl
from beats_core.lazy import lazy_exports

if TYPE_CHECKING:
    from beats_core.audio import AudioInfo, audio_info, check_waveform_values, load_audio
    from beats_core.audio_files import find_audio_files
    from beats_core.batching import batch_by_length, pad_waveforms
    from beats_core.checkpoint import read_checkpoint
    from beats_core.config import BEATsConfig
    from beats_core.download import ensure_checkpoint, fetch_checkpoint, find_cached_checkpoint
    from beats_core.factory import LoadedCheckpoint, create_model, load_checkpoint, save_checkpoint
    from beats_core.fbank import compute_fbank
    from beats_core.model import BEATs
    from beats_core.plugins import collect_registrations, get_plugin_manager
    from beats_core.registry import DEFAULT_MODEL, ModelInfo, get_model_info, list_available_models
    from beats_core.summary import CheckpointSummary, summarize_checkpoint

_LAZY = {
    "BEATs": ".model",
    "BEATsConfig": ".config",
    "compute_fbank": ".fbank",
    "LoadedCheckpoint": ".factory",
    "create_model": ".factory",
    "load_checkpoint": ".factory",
    "read_checkpoint": ".checkpoint",
    "save_checkpoint": ".factory",
    "load_audio": ".audio",
    "audio_info": ".audio",
    "AudioInfo": ".audio",
    "check_waveform_values": ".audio",
    "find_audio_files": ".audio_files",
    "pad_waveforms": ".batching",
    "batch_by_length": ".batching",
    "DEFAULT_MODEL": ".registry",
    "ModelInfo": ".registry",
    "list_available_models": ".registry",
    "get_model_info": ".registry",
    "ensure_checkpoint": ".download",
    "fetch_checkpoint": ".download",
    "find_cached_checkpoint": ".download",
    "CheckpointSummary": ".summary",
    "summarize_checkpoint": ".summary",
    "collect_registrations": ".plugins",
    "get_plugin_manager": ".plugins",
}

__all__ = [
    "AudioDecodeError",
    "AudioTooShortError",
    "BeatsError",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DiskFullError",
    "HubError",
    "InvalidAudioError",
    "MissingDependencyError",
    "PluginError",
    "PluginWarning",
    "StoreError",
    "TrainingError",
    "UnknownLoaderError",
    "UnknownModelError",
    "UnknownNameError",
    "UnknownPoolingError",
    "UnknownPresetError",
    "__version__",
    "hookimpl",
    *_LAZY,
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
