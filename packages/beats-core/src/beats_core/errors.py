"""The exception hierarchy of the beats packages.

Every error raised on purpose by a beats package is a :class:`BeatsError`, so
``except BeatsError`` catches anything the library reports. Each class also
derives from the builtin exception that fits, so code that catches ``OSError`` or
``ValueError`` keeps working. Messages name the file, model or plugin involved and
say what to do next.
"""

from __future__ import annotations

__all__ = [
    "AudioDecodeError",
    "BeatsError",
    "CheckpointError",
    "AudioTooShortError",
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
]


class BeatsError(Exception):
    """Base class of every error raised by the beats packages."""


class ConfigError(BeatsError, ValueError):
    """A configuration value is invalid; the message names the field and the accepted values."""


class CheckpointError(BeatsError, OSError):
    """A checkpoint is missing, cannot be downloaded, or is not a valid BEATs checkpoint."""


class UnknownNameError(BeatsError, LookupError):
    """A name is not registered; the message gives the closest registered names and lists them all.

    Each kind of registered name has its own subclass, which also derives from the error of
    its area (a model is a checkpoint problem, a loader a dataset problem, ...).
    """


class UnknownModelError(UnknownNameError, CheckpointError):
    """A model name is not registered."""


class AudioDecodeError(BeatsError, OSError):
    """An audio file cannot be decoded; the message names the file and the reason."""


class InvalidAudioError(BeatsError, ValueError):
    """A waveform or padding mask handed to the model has the wrong shape, dtype or length."""


class AudioTooShortError(InvalidAudioError):
    """A clip is shorter than the fbank or the model needs; the message gives the minimum and says to pad."""


class DatasetError(BeatsError, ValueError):
    """A dataset is malformed or fails validation."""


class UnknownLoaderError(UnknownNameError, DatasetError):
    """A dataset loader name is not registered."""


class UnknownPoolingError(UnknownNameError, ConfigError):
    """A pooling name is not registered."""


class UnknownPresetError(UnknownNameError, ConfigError):
    """A training preset name is not registered."""


class DiskFullError(BeatsError, OSError):
    """A file could not be written because its disk (or the user's quota) is full; the message names the file."""


class HubError(BeatsError, OSError):
    """Uploading to the Hugging Face Hub failed (no access, no network, or the Hub refused the files)."""


class StoreError(BeatsError, OSError):
    """A store of embeddings is damaged, or was made with other settings than those asked for now."""


class TrainingError(BeatsError, RuntimeError):
    """Training cannot go on: the loss is not finite, or a saved state does not fit the run resumed."""


class MissingDependencyError(BeatsError, ImportError):
    """An optional dependency is not installed; the message names the extra to install (``pip install 'pkg[extra]'``)."""


class PluginError(BeatsError, RuntimeError):
    """A plugin is missing, misbehaves, or a name it registers cannot be resolved."""


class PluginWarning(UserWarning):
    """A plugin failed to load or registered a name that is already taken; the rest keeps working."""
