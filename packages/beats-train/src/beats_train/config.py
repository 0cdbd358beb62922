"""The configuration of a training run: what data, and how to train.

:class:`DataConfig` says where the clips are and how to split and batch them;
:class:`TrainingConfig` (with its :class:`AugmentationConfig`) says which model to start
from and how to fine-tune it. Both are dataclasses: every value is checked when the object
is made (the message names the field and what is accepted), :meth:`~TrainingConfig.to_dict`
and ``from_dict`` round-trip them through plain data, and :func:`save_config` /
:func:`load_config` write and read one YAML or JSON file holding both::

    data:
      data_dir: esc50:/data/ESC-50-master
      test_fold: 1
    training:
      preset: esc50-paper      # a named preset, then any field overridden
      max_epochs: 60

Unknown keys are refused with the closest field name, so that a typo never silently
leaves a setting at its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
import warnings
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from beats_core.coercion import coerce
from beats_core.errors import ConfigError, UnknownPresetError
from beats_core.lookup import lookup
from beats_core.registry import DEFAULT_MODEL
from beats_train.presets import PRESETS

__all__ = [
    "CLASS_BALANCE",
    "MIXED_PRECISION",
    "MONITORS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "AugmentationConfig",
    "DataConfig",
    "TrainingConfig",
    "get_preset",
    "load_config",
    "resolve_batch_size",
    "save_config",
]

#: Accepted values of :attr:`TrainingConfig.optimizer`.
OPTIMIZERS = ("adamw", "adam", "sgd")
#: Accepted values of :attr:`TrainingConfig.scheduler`.
SCHEDULERS = ("cosine", "linear", "constant")
#: Accepted values of :attr:`TrainingConfig.mixed_precision` (Accelerate's names, and ``auto``).
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
#: Accepted values of :attr:`TrainingConfig.class_balance`.
CLASS_BALANCE = ("none", "loss", "sampler")
#: Accepted values of :attr:`TrainingConfig.monitor`.
MONITORS = ("accuracy", "macro_f1", "map", "loss")
#: Accepted values of :attr:`TrainingConfig.device`.
DEVICES = ("auto", "cpu")

_Config = TypeVar("_Config", bound="_Checked")


class _Checked:
    """Type coercion at construction and dict round-trips, shared by the config dataclasses."""

    #: Former fields that are still accepted (and handled in ``__post_init__``), never suggested.
    _legacy_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            setattr(
                self, f.name, coerce(getattr(self, f.name), hints[f.name], f"{type(self).__name__}.{f.name}")
            )
        self._check()

    def _check(self) -> None:
        """Check ranges and combinations; raise ConfigError naming the field."""

    @classmethod
    def from_dict(cls: type[_Config], values: Mapping[str, Any]) -> _Config:
        """Build the configuration from plain data (e.g. a parsed YAML mapping).

        Args:
            values: field names and values; missing fields keep their defaults.

        Returns:
            The configuration.

        Raises:
            ConfigError: ``values`` is not a mapping, a key is not a field (the message
                suggests the closest), or a value is invalid.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"a {cls.__name__} must be a mapping of fields, got {type(values).__name__}")
        _reject_unknown(cls, values)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain data (lists for tuples, dicts for nested configs), for YAML or JSON."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def replace(self: _Config, **changes: Any) -> _Config:
        """Return a copy with some fields changed (and checked).

        Raises:
            ConfigError: a name is not a field, or a value is invalid.
        """
        _reject_unknown(type(self), changes)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass
class DataConfig(_Checked):
    """Where the clips are, how they are split, and how they are batched.

    The dataset is ``data_dir`` (a folder with one sub-folder per class, or ``NAME:PATH``
    for a registered loader such as ``esc50:/data/ESC-50-master``), or ``metadata_file``
    (a CSV with one row per clip; relative paths start at ``data_dir`` if given, else at
    the CSV's folder), or a DataFrame handed to the trainer (relative paths start at
    ``data_dir``).

    Splits, in this order of precedence: ``test_fold`` (and optionally ``val_fold``) for
    datasets with folds (ESC-50, UrbanSound8K); else a ``split`` column of the data (e.g. a
    folder with ``train``/``val``/``test`` sub-folders); else a stratified random split by
    ``train_split``/``val_split``/``test_split``. When the validation set is not given by
    the data, it is carved out of the training clips (``val_split`` of all clips), never
    out of the test set.

    Attributes:
        data_dir: dataset folder, ``NAME:PATH`` of a registered loader, or the folder
            relative paths start from.
        metadata_file: a CSV file with one row per clip.
        audio_column: the column of the CSV / DataFrame holding the audio paths.
        label_column: the column holding the labels.
        label_delimiter: the separator of several labels of one clip (multi-label data).
        start_column: the column of the CSV / DataFrame holding where each clip starts in its
            recording, in seconds (with :attr:`end_column`): the rows are then clips of longer
            recordings, e.g. the hits of ``beats search -o hits.csv``. Clips are trained from
            stored embeddings (:attr:`TrainingConfig.embeddings`); ``None``: each row is a whole file.
        end_column: the column holding where each clip ends, in seconds.
        train_split: share of the clips used for training.
        val_split: share used for validation (model selection and early stopping).
        test_split: share used for the final test; the three must sum to 1.
        test_fold: the fold used as test set (fold protocols of ESC-50 and UrbanSound8K).
        val_fold: a fold used as validation set; by default validation comes from the
            training folds.
        batch_size: clips per batch and process, in training, evaluation and prediction (a
            preset's :attr:`TrainingConfig.batch_size` takes its place in a run; see
            :func:`resolve_batch_size`).
        num_workers: audio decoding processes per training process (0 decodes in it).
        max_duration: longest waveform in seconds: longer training clips are cropped at
            a random place, evaluation clips are cut into windows whose predictions are
            averaged. ``None`` keeps whole clips.
        validate: decode every clip before training (``beats validate``): broken or
            missing files are left out with a warning, a dataset that cannot be trained
            on stops with the validation report.
        seed: the seed of the random split.

    ``sample_rate`` is no longer a field: BEATs works on 16 kHz audio and every file is
    resampled when it is loaded. ``sample_rate=16000`` (in older configuration files) is
    accepted with a ``FutureWarning`` and ignored; any other rate is refused.
    """

    data_dir: str | None = None
    metadata_file: str | None = None
    audio_column: str = "filename"
    label_column: str = "category"
    label_delimiter: str = ","
    start_column: str | None = None
    end_column: str | None = None
    train_split: float = 0.8
    val_split: float = 0.1
    test_split: float = 0.1
    test_fold: int | None = None
    val_fold: int | None = None
    batch_size: int = 16
    num_workers: int = 0
    max_duration: float | None = 10.0
    validate: bool = True
    seed: int = 0
    sample_rate: InitVar[int | None] = None
    _legacy_fields: ClassVar[tuple[str, ...]] = ("sample_rate",)

    def __post_init__(self, sample_rate: int | None) -> None:
        if sample_rate is not None:
            _accept_legacy_sample_rate(sample_rate)
        super().__post_init__()

    def _check(self) -> None:
        name = "DataConfig"
        for split in ("train_split", "val_split", "test_split"):
            value = getattr(self, split)
            if not 0.0 <= value <= 1.0:
                _fail(name, split, value, "must be a share between 0 and 1")
        total = self.train_split + self.val_split + self.test_split
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"DataConfig.train_split + val_split + test_split must sum to 1, got "
                f"{self.train_split} + {self.val_split} + {self.test_split} = {total:g}; "
                "e.g. train_split=0.8, val_split=0.1, test_split=0.1"
            )
        if self.train_split == 0.0:
            _fail(name, "train_split", self.train_split, "must be above 0: there is nothing to train on")
        _at_least(name, "batch_size", self.batch_size, 1)
        _at_least(name, "num_workers", self.num_workers, 0)
        if self.max_duration is not None and not (
            math.isfinite(self.max_duration) and self.max_duration >= 0.2
        ):
            _fail(
                name,
                "max_duration",
                self.max_duration,
                "must be at least 0.2 seconds, or None for whole clips",
            )
        if self.val_fold is not None and self.test_fold is None:
            _fail(name, "val_fold", self.val_fold, "needs test_fold too")
        if self.val_fold is not None and self.val_fold == self.test_fold:
            _fail(name, "val_fold", self.val_fold, "must differ from test_fold")
        if not self.label_delimiter:
            _fail(name, "label_delimiter", self.label_delimiter, "must not be empty")
        if (self.start_column is None) != (self.end_column is None):
            given, missing = ("start_column", "end_column")[:: 1 if self.end_column is None else -1]
            _fail(name, given, getattr(self, given), f"needs {missing} too: clips are given by both")
        if self.start_column is not None and self.start_column == self.end_column:
            _fail(name, "end_column", self.end_column, "must differ from start_column")

    @property
    def clips(self) -> bool:
        """Whether the rows are clips of recordings (:attr:`start_column` and :attr:`end_column` are set)."""
        return self.start_column is not None


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


@dataclass
class AugmentationConfig(_Checked):
    """Data augmentation, applied in training only.

    On the waveform: a random gain, a random circular time shift ("roll"), and mixup
    (which switches the loss to binary cross-entropy on mixed targets). On the
    normalised fbank, before the patch embedding (SpecAugment-style): time and
    frequency masks, set to 0 (the normalised mean), as ESPnet does for BEATs.

    Attributes:
        time_masks: number of time masks per clip.
        time_mask_ratio: widest time mask, as a share of the clip's fbank frames (each
            mask's width is drawn uniformly up to it; ESPnet's ``time_mask_width_ratio_range``).
        freq_masks: number of frequency masks per clip.
        freq_mask_bins: widest frequency mask, in mel bins (of 128).
        roll: shift each clip circularly in time by a random amount (within its own length).
        roll_interval: shifts are multiples of this many samples (ESPnet's ``roll_interval``).
        gain_db: multiply each clip by a random gain drawn uniformly in ``[-gain_db, +gain_db]`` dB.
        mixup: the alpha of the Beta(alpha, alpha) mixing weight; 0 turns mixup off.
    """

    time_masks: int = 0
    time_mask_ratio: float = 0.1
    freq_masks: int = 0
    freq_mask_bins: int = 16
    roll: bool = False
    roll_interval: int = 1600
    gain_db: float = 0.0
    mixup: float = 0.0

    def _check(self) -> None:
        name = "AugmentationConfig"
        _at_least(name, "time_masks", self.time_masks, 0)
        _at_least(name, "freq_masks", self.freq_masks, 0)
        if not 0.0 <= self.time_mask_ratio <= 1.0:
            _fail(name, "time_mask_ratio", self.time_mask_ratio, "must be a share between 0 and 1")
        if not 0 <= self.freq_mask_bins <= 128:
            _fail(name, "freq_mask_bins", self.freq_mask_bins, "must be between 0 and 128 mel bins")
        _at_least(name, "roll_interval", self.roll_interval, 1)
        for key in ("gain_db", "mixup"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                _fail(name, key, value, "must be a number >= 0 (0 turns it off)")

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return bool(self.time_masks or self.freq_masks or self.roll or self.gain_db > 0 or self.mixup > 0)


@dataclass
class TrainingConfig(_Checked):
    """How to fine-tune: the model to start from, the optimisation, regularisation and outputs.

    Fields left at ``None`` keep the model's own setting (the value in its checkpoint's cfg).
    Named recipes are in :mod:`beats_train.presets` (``TrainingConfig.preset("fast")``).

    Attributes:
        model: where to start: a registered model name (``beats models``), a checkpoint
            file, ``hf-hub:owner/name``, or ``random:tiny`` / ``random:base`` /
            ``random:large`` for a randomly initialised model of that size.
        learning_rate: peak learning rate (of the head; see :attr:`layer_lr_decay`).
        max_epochs: passes over the training clips.
        patience: stop after this many epochs without improvement of :attr:`monitor`;
            ``None`` never stops early.
        monitor: the validation metric that picks the best epoch: ``accuracy``,
            ``macro_f1``, ``map`` (mean average precision) or ``loss``; ``None`` means
            ``accuracy`` (single-label) or ``map`` (multi-label).
        batch_size: clips per batch and process in a run (training and evaluation), when
            the recipe fixes it (the ``esc50-paper`` preset's 60); ``None`` takes
            :attr:`DataConfig.batch_size`. :func:`resolve_batch_size` is the rule.
        optimizer: ``adamw``, ``adam`` or ``sgd``.
        betas: Adam's (beta1, beta2).
        momentum: SGD's momentum.
        weight_decay: decoupled (AdamW) or L2 (Adam, SGD) weight decay, applied to weight
            matrices only (not to biases, norms or the layer weights).
        warmup: share of the optimiser steps over which the learning rate rises linearly
            from 0 to its peak.
        scheduler: after warm-up, ``cosine`` decay to 0, ``linear`` decay to 0, or ``constant``.
        layer_lr_decay: layer-wise learning-rate decay: layer ``i`` of ``L`` trains at
            ``learning_rate * layer_lr_decay ** (L + 1 - i)`` (the patch embedding is
            layer 0, the head ``L + 1``); 1.0 turns it off.
        layer_wise_gradient_decay_ratio: BEATs' own gradient scale at the input of every
            layer (0.2 in the published ESC-50 fine-tuning); ``None`` keeps the model's.
        encoder_layerdrop: probability of skipping a whole layer in training; ``None``
            keeps the model's.
        dropout: the encoder's dropout; ``None`` keeps the model's.
        head_dropout: dropout on the tokens before the classifier head.
        freeze_backbone: train the head only (a linear probe): the encoder runs in eval
            mode without gradients.
        unfreeze_after: with :attr:`freeze_backbone`, train the whole model from this
            epoch on (the encoder's learning rate is 0 until then).
        embeddings: a store of embeddings (a folder, :mod:`beats_extract.store`) to train a
            linear probe on, in seconds: with :attr:`freeze_backbone`, every training,
            validation and test clip is embedded into it once by the frozen encoder (clips it
            holds already, made by the same encoder with the same settings, are reused), and
            the head (with the layer weights of :attr:`weighted_layer_sum`) trains on the
            stored embeddings instead of running the encoder in every epoch
            (:mod:`beats_train.probe`). What a store cannot hold is refused: augmentation,
            :attr:`head_dropout` and :attr:`unfreeze_after`. ``None``: the encoder runs on
            every clip in every epoch.
        weighted_layer_sum: classify a learnable softmax-weighted sum of every layer's
            output instead of the last layer's. The weights are stored in the checkpoint's
            cfg (key ``beats_train``), which beats-train reads; the official code and
            ``BEATs.extract_features`` ignore them.
        label_smoothing: label smoothing of the targets.
        class_balance: ``none``, ``loss`` (class-weighted loss, weights inverse to the
            class frequencies of the training split) or ``sampler`` (every class drawn
            equally often).
        multi_label: several labels per clip (AudioSet style): sigmoid outputs and binary
            cross-entropy; labels are split on :attr:`DataConfig.label_delimiter`.
        fbank_mean: the fbank mean the model normalises with; ``None`` keeps the model's.
        fbank_std: the fbank standard deviation (the fbank is divided by twice it);
            ``None`` keeps the model's.
        dataset_fbank_stats: compute the fbank mean and standard deviation of the
            training clips before training and use them (they are saved in the checkpoint).
        augmentation: see :class:`AugmentationConfig`.
        mixed_precision: ``auto`` (``bf16`` where the hardware computes in bfloat16
            natively: a CUDA GPU that supports it, or a CPU with AMX or AVX512-BF16;
            ``no`` elsewhere), ``no``, ``bf16`` (on a CPU that only emulates bfloat16 it
            trains, several times slower, with a ``PrecisionWarning``) or ``fp16`` (needs
            a GPU; the loss is scaled).
        gradient_accumulation_steps: batches whose gradients are summed per optimiser step.
        gradient_clipping: clip the gradient norm to this value; ``None`` does not clip.
        device: ``auto`` (the GPUs when there are any, else the CPU) or ``cpu``.
        output_dir: the run folder (configs, metrics, plots, checkpoints).
        seed: seed of the initialisation, augmentation and data order.
        tracker: an experiment tracker of Accelerate (``tensorboard``, ``wandb``,
            ``mlflow``, ...; it must be installed), or ``None``.
        progress: show tqdm progress bars (main process only).
    """

    model: str = DEFAULT_MODEL
    learning_rate: float = 1e-4
    max_epochs: int = 30
    patience: int | None = 5
    monitor: str | None = None
    batch_size: int | None = None
    optimizer: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    weight_decay: float = 0.01
    warmup: float = 0.1
    scheduler: str = "cosine"
    layer_lr_decay: float = 1.0
    layer_wise_gradient_decay_ratio: float | None = None
    encoder_layerdrop: float | None = None
    dropout: float | None = None
    head_dropout: float = 0.0
    freeze_backbone: bool = False
    unfreeze_after: int | None = None
    embeddings: str | None = None
    weighted_layer_sum: bool = False
    label_smoothing: float = 0.0
    class_balance: str = "none"
    multi_label: bool = False
    fbank_mean: float | None = None
    fbank_std: float | None = None
    dataset_fbank_stats: bool = False
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    mixed_precision: str = "auto"
    gradient_accumulation_steps: int = 1
    gradient_clipping: float | None = None
    device: str = "auto"
    output_dir: str = "runs/beats"
    seed: int = 0
    tracker: str | None = None
    progress: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """Build the configuration from plain data; a ``preset`` key starts from that preset.

        Args:
            values: field names and values (``augmentation`` as a nested mapping); with
                ``preset: NAME``, the other keys override the preset's fields.

        Returns:
            The configuration.

        Raises:
            ConfigError: unknown key or preset, or an invalid value.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"a TrainingConfig must be a mapping of fields, got {type(values).__name__}")
        values = dict(values)
        preset = values.pop("preset", None)
        _reject_unknown(cls, values)
        if preset is None:
            return cls(**values)
        return cls.preset(str(preset), **values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainingConfig:
        """A named recipe (see :mod:`beats_train.presets`), with any field overridden.

        Args:
            name: ``esc50-paper``, ``fast``, or another name from
                :func:`~beats_train.presets.list_presets`.
            **overrides: fields to change; ``augmentation`` may be a mapping of the
                augmentation fields to change.

        Returns:
            The configuration.

        Raises:
            ConfigError: unknown name (the message lists the presets) or an invalid override.
        """
        return get_preset(name, **overrides)

    def replace(self, **changes: Any) -> TrainingConfig:
        """Return a copy with some fields changed; ``augmentation`` may be a mapping of fields to change.

        Raises:
            ConfigError: a name is not a field, or a value is invalid.
        """
        augmentation = changes.get("augmentation")
        if isinstance(augmentation, Mapping):
            changes["augmentation"] = self.augmentation.replace(**augmentation)
        return super().replace(**changes)

    def _check(self) -> None:
        name = "TrainingConfig"
        if not self.model.strip():
            _fail(name, "model", self.model, "must name a model, a checkpoint file or random:SIZE")
        _positive(name, "learning_rate", self.learning_rate)
        _at_least(name, "max_epochs", self.max_epochs, 1)
        if self.patience is not None:
            _at_least(name, "patience", self.patience, 1)
        _choice(name, "monitor", self.monitor, MONITORS, optional=True)
        if self.monitor == "map" and not self.multi_label:
            _fail(name, "monitor", self.monitor, "is for multi_label=True; use accuracy or macro_f1")
        if self.batch_size is not None:
            _at_least(name, "batch_size", self.batch_size, 1)
        _choice(name, "optimizer", self.optimizer, OPTIMIZERS)
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            _fail(name, "betas", self.betas, "must be two numbers in [0, 1)")
        if not 0.0 <= self.momentum < 1.0:
            _fail(name, "momentum", self.momentum, "must be in [0, 1)")
        _non_negative(name, "weight_decay", self.weight_decay)
        if not 0.0 <= self.warmup < 1.0:
            _fail(name, "warmup", self.warmup, "must be a share of the steps in [0, 1)")
        _choice(name, "scheduler", self.scheduler, SCHEDULERS)
        if not 0.0 < self.layer_lr_decay <= 1.0:
            _fail(name, "layer_lr_decay", self.layer_lr_decay, "must be in (0, 1]; 1 turns it off")
        if self.layer_wise_gradient_decay_ratio is not None:
            _positive(name, "layer_wise_gradient_decay_ratio", self.layer_wise_gradient_decay_ratio)
        for key in ("encoder_layerdrop", "dropout", "head_dropout", "label_smoothing"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                _fail(name, key, value, "must be a probability in [0, 1)")
        if self.unfreeze_after is not None:
            if not self.freeze_backbone:
                _fail(name, "unfreeze_after", self.unfreeze_after, "needs freeze_backbone=True")
            _at_least(name, "unfreeze_after", self.unfreeze_after, 1)
        if self.embeddings is not None:
            self._check_embeddings()
        _choice(name, "class_balance", self.class_balance, CLASS_BALANCE)
        if self.fbank_mean is not None and not math.isfinite(self.fbank_mean):
            _fail(name, "fbank_mean", self.fbank_mean, "must be a finite number")
        if self.fbank_std is not None:
            _positive(name, "fbank_std", self.fbank_std)
        if self.dataset_fbank_stats and (self.fbank_mean is not None or self.fbank_std is not None):
            _fail(name, "dataset_fbank_stats", True, "cannot be combined with fbank_mean / fbank_std")
        _choice(name, "mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _at_least(name, "gradient_accumulation_steps", self.gradient_accumulation_steps, 1)
        if self.gradient_clipping is not None:
            _positive(name, "gradient_clipping", self.gradient_clipping)
        _choice(name, "device", self.device, DEVICES)
        if not self.output_dir.strip():
            _fail(name, "output_dir", self.output_dir, "must be a folder")
        if self.tracker is not None and not self.tracker.strip():
            _fail(name, "tracker", self.tracker, "must name a tracker (e.g. tensorboard) or be None")

    def _check_embeddings(self) -> None:
        """Refuse what stored embeddings cannot give: each names the setting, why, and what to do."""
        name = "TrainingConfig"
        if not str(self.embeddings).strip():
            _fail(name, "embeddings", self.embeddings, "must be the folder of a store of embeddings, or None")
        if not self.freeze_backbone:
            _fail(
                name,
                "embeddings",
                self.embeddings,
                "needs freeze_backbone=True (--freeze-backbone): a store holds the embeddings of the frozen "
                "encoder, to train the head on",
            )
        inexact, fixes = [], []
        if self.unfreeze_after is not None:
            inexact.append(
                f"unfreeze_after={self.unfreeze_after} (an encoder that trains changes the embeddings a store holds)"
            )
            fixes.append("unfreeze_after=None")
        augmentation = self.augmentation
        if augmentation.active:
            active = [
                f"{key}={getattr(augmentation, key)!r}"
                for key in ("time_masks", "freq_masks", "roll", "gain_db", "mixup")
                if getattr(augmentation, key)
            ]
            inexact.append(
                f"augmentation ({', '.join(active)}: it changes what the encoder hears in every epoch, and a store "
                "holds one embedding per clip)"
            )
            fixes.append("no augmentation")
        if self.head_dropout > 0:
            inexact.append(
                f"head_dropout={self.head_dropout} (it drops token features before the head, and a store holds "
                "their mean)"
            )
            fixes.append("head_dropout=0")
        if inexact:
            raise ConfigError(
                f"TrainingConfig.embeddings={self.embeddings!r} trains on stored embeddings, which cannot reproduce "
                f"{'; '.join(inexact)}. Use {', '.join(fixes)}, or leave out embeddings to run the encoder on "
                "every clip in every epoch"
            )

    @property
    def monitored_metric(self) -> str:
        """The metric that picks the best epoch (:attr:`monitor`, or its default)."""
        return self.monitor or ("map" if self.multi_label else "accuracy")


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def get_preset(name: str, **overrides: Any) -> TrainingConfig:
    """Return a preset's configuration with some fields overridden.

    Args:
        name: a name from :func:`~beats_train.presets.list_presets`.
        **overrides: fields to change; ``augmentation`` may be a mapping of the augmentation
            fields to change (the others keep the preset's values).

    Returns:
        A new :class:`TrainingConfig`.

    Raises:
        UnknownPresetError: the name is not a preset (the message lists them and the closest).
        ConfigError: an override is not a field or has an invalid value.
    """
    values = lookup(
        name,
        PRESETS,
        kind="training preset",
        error=UnknownPresetError,
        advice="Name one of them, or set the fields yourself.",
    )
    return TrainingConfig.from_dict(values).replace(**overrides)


def resolve_batch_size(data: DataConfig, training: TrainingConfig | None = None) -> int:
    """The batch size of a run: the one rule every loader of beats-train follows.

    Args:
        data: the data configuration (:attr:`DataConfig.batch_size`).
        training: the training configuration, whose :attr:`TrainingConfig.batch_size`
            (a recipe's batch size) takes precedence when it is set.

    Returns:
        Clips per batch and process, for training, evaluation, prediction and statistics.
    """
    if training is not None and training.batch_size is not None:
        return training.batch_size
    return data.batch_size


def save_config(
    path: str | Path, training: TrainingConfig | None = None, data: DataConfig | None = None
) -> Path:
    """Write the configurations to one YAML (``.yaml``/``.yml``) or JSON (``.json``) file.

    The file has a ``data`` and a ``training`` section (those given), and
    :func:`load_config` reads it back; ``beats train --config FILE`` takes it too.

    Args:
        path: the file to write; its suffix picks the format.
        training: the training configuration.
        data: the data configuration.

    Returns:
        The path written.

    Raises:
        ConfigError: the suffix is neither YAML nor JSON.
    """
    path = Path(path)
    content: dict[str, Any] = {}
    if data is not None:
        content["data"] = data.to_dict()
    if training is not None:
        content["training"] = training.to_dict()
    from beats_core.atomic import atomic_write_text

    atomic_write_text(path, _dump(content, path))
    return path


def load_config(path: str | Path) -> tuple[DataConfig | None, TrainingConfig | None]:
    """Read configurations from a YAML or JSON file.

    The file holds a ``data`` and/or a ``training`` section (as :func:`save_config` writes
    it), or only the fields of a :class:`TrainingConfig` at its top level.

    Args:
        path: the ``.yaml``, ``.yml`` or ``.json`` file.

    Returns:
        ``(data_config, training_config)``; a section the file lacks is ``None``.

    Raises:
        ConfigError: the file is missing, cannot be parsed, or holds invalid settings (the
            message names the file and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {str(path)!r} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError(f"configuration file {str(path)!r} must end in .yaml, .yml or .json")
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".json":
            content = json.loads(text)
        else:
            import yaml

            content = yaml.safe_load(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"configuration file {str(path)!r} cannot be parsed: {e}") from e
    content = content or {}
    if not isinstance(content, Mapping):
        raise ConfigError(
            f"configuration file {str(path)!r} must hold a mapping, got {type(content).__name__}"
        )
    try:
        if not ({"data", "training"} & set(content)):
            return None, TrainingConfig.from_dict(content)
        unknown = sorted(set(content) - {"data", "training"})
        if unknown:
            raise ConfigError(f"unknown section(s) {unknown}; the sections are 'data' and 'training'")
        data = DataConfig.from_dict(content["data"]) if content.get("data") is not None else None
        training = (
            TrainingConfig.from_dict(content["training"]) if content.get("training") is not None else None
        )
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    return data, training


def _dump(content: dict[str, Any], path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json.dumps(content, indent=2) + "\n"
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_dump(content, sort_keys=False)
    raise ConfigError(f"configuration file {str(path)!r} must end in .yaml, .yml or .json")


# ---------------------------------------------------------------------------
# Checking values
# ---------------------------------------------------------------------------


def _accept_legacy_sample_rate(sample_rate: Any) -> None:
    if sample_rate != 16000:
        _fail(
            "DataConfig",
            "sample_rate",
            sample_rate,
            "must be 16000: BEATs is trained on 16 kHz audio (files at any rate are resampled to "
            "16 kHz when loaded, so leave it out)",
        )
    warnings.warn(
        "DataConfig.sample_rate is no longer a setting and is ignored: BEATs works on 16 kHz audio and "
        "every file is resampled when it is loaded; remove sample_rate from your configuration",
        FutureWarning,
        stacklevel=4,
    )


def _reject_unknown(cls: type[_Checked], values: Mapping[str, Any]) -> None:
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in values:
        if key not in known and key not in cls._legacy_fields:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the fields are {', '.join(known)}"
            raise ConfigError(f"{cls.__name__} has no field {key!r}{hint}")


def _plain(value: Any) -> Any:
    if isinstance(value, _Checked):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def _fail(owner: str, name: str, value: Any, rule: str) -> None:
    raise ConfigError(f"{owner}.{name} {rule}, got {value!r}")


def _choice(owner: str, name: str, value: Any, choices: tuple[str, ...], *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail(owner, name, value, f"must be one of {', '.join(choices)}{hint}")


def _at_least(owner: str, name: str, value: int, minimum: int) -> None:
    if value < minimum:
        _fail(owner, name, value, f"must be at least {minimum}")


def _positive(owner: str, name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        _fail(owner, name, value, "must be a positive number")


def _non_negative(owner: str, name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        _fail(owner, name, value, "must be a number >= 0")
