"""The whole story on one small dataset: ``beats demo``.

:func:`run_demo` goes through every step a real project goes through, with the real
code of each package:

1. data: a generated labelled dataset of synthetic sounds (beats-data's
   :func:`~beats_data.make_synthetic_dataset`), or the user's own (a folder with one
   sub-folder per class, a CSV, or ``NAME:PATH`` of a registered loader);
2. validation: every clip decoded, the report printed, unreadable files left out;
3. model: the default pre-trained checkpoint when it is cached or can be downloaded,
   otherwise a small randomly initialised BEATs, and the demo says so;
4. fine-tuning on the training split, the best epoch chosen on the validation split;
5. evaluation on the held-out test split: the metrics table, and the run folder with
   the classification report, the confusion matrix and the training curves;
6. embeddings of every clip from the fine-tuned encoder (beats-extract), saved to a
   features file;
7. a similarity query: the clips nearest to a test clip, and how often the nearest
   clips share the query's class.

It needs no network and no GPU; on 2 CPU cores it takes about a minute with the small
random model and a few minutes with the pre-trained one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from beats_core import DEFAULT_MODEL, CheckpointError, ensure_checkpoint
from beats_data import format_report, make_synthetic_dataset, resolve_dataset
from beats_extract import FeatureIndex, SearchHit, save_features
from beats_train import BEATsTrainer, TrainingConfig, TrainingResults
from beats_train.metrics import format_classification_report

__all__ = ["RANDOM_MODEL", "DemoResults", "choose_model", "demo_training_config", "run_demo"]

#: The model the demo trains when the pre-trained checkpoint cannot be had.
RANDOM_MODEL = "random:tiny"

#: How the demo splits and batches the data: a fifth of the clips held out for the test.
DATA_SETTINGS = {
    "train_split": 0.7,
    "val_split": 0.1,
    "test_split": 0.2,
    "batch_size": 8,
    "max_duration": 3.0,
}

#: Neighbours counted by the similarity check.
NEIGHBOURS = 5


@dataclass
class DemoResults:
    """What :func:`run_demo` did.

    Attributes:
        model: the starting model (a registered name, a file, or ``random:tiny``).
        pretrained: whether it started from pre-trained weights.
        data: the dataset's clips, one row each, with their ``split``.
        training: the fine-tuning results (metrics, history, run-folder paths).
        embeddings: the features file of every clip's embedding.
        query: the test clip of the similarity query.
        hits: its nearest clips, best first (the query itself excluded).
        neighbour_agreement: over all test clips, the share of their nearest clips that
            have their class (precision at 5).
    """

    model: str
    pretrained: bool
    data: pd.DataFrame
    training: TrainingResults
    embeddings: Path
    query: str
    hits: list[SearchHit]
    neighbour_agreement: float


def choose_model(model: str | None = None, *, say: Callable[[str], None] = print) -> tuple[str, bool]:
    """The starting model: the one asked for, else the default checkpoint, else a random one.

    Args:
        model: a registered name, a checkpoint file or ``random:SIZE``; ``None`` tries the
            default checkpoint (cached, or downloaded now) and falls back to
            :data:`RANDOM_MODEL`.
        say: where the explanation goes.

    Returns:
        ``(model, pretrained)``.

    Raises:
        CheckpointError: a model that was asked for by name cannot be had.
    """
    if model is not None:
        if not model.startswith("random:"):
            ensure_checkpoint(model)
        return model, not model.startswith("random:")
    say(
        f"Looking for the pre-trained checkpoint {DEFAULT_MODEL} (in the Hugging Face cache, or on the Hub)..."
    )
    try:
        path = ensure_checkpoint(DEFAULT_MODEL)
    except CheckpointError as error:
        say(
            f"NOTE: the pre-trained checkpoint is not available here:\n      {error}\n"
            f"      The demo goes on with a small randomly initialised BEATs ({RANDOM_MODEL}): every step is\n"
            "      the real one, but the accuracy is that of a tiny model trained from scratch, not BEATs'.\n"
            f"      For the real thing: `beats download {DEFAULT_MODEL}` on a machine with network, then run the demo again."
        )
        return RANDOM_MODEL, False
    say(f"Using {DEFAULT_MODEL} ({path}).")
    return DEFAULT_MODEL, True


def demo_training_config(
    model: str, *, pretrained: bool, output_dir: Path, epochs: int | None = None, full_finetune: bool = False
) -> TrainingConfig:
    """The fine-tuning settings of the demo, from the ``fast`` preset.

    * a pre-trained model: the encoder stays frozen and only the classifier trains
      (a linear probe: minutes on a CPU, and BEATs' embeddings separate most sound
      classes), or every layer with ``full_finetune``;
    * a random model: every layer, at a learning rate for training from scratch, with
      no layer-wise gradient decay and no layer drop.

    Args:
        model: the starting model.
        pretrained: whether it is pre-trained.
        output_dir: the run folder.
        epochs: the most epochs (default 8 for a linear probe, 10 for full fine-tuning, 40 random).
        full_finetune: train every layer of a pre-trained model.

    Returns:
        The configuration.
    """
    common = {"model": model, "output_dir": str(output_dir), "seed": 0}
    if not pretrained:
        return TrainingConfig.preset(
            "fast",
            learning_rate=2e-3,
            max_epochs=epochs or 40,
            patience=10,
            layer_wise_gradient_decay_ratio=None,
            encoder_layerdrop=0.0,
            **common,
        )
    if full_finetune:
        return TrainingConfig.preset("fast", max_epochs=epochs or 10, **common)
    return TrainingConfig.preset(
        "fast", freeze_backbone=True, learning_rate=1e-3, max_epochs=epochs or 8, **common
    )


def run_demo(
    data: str | Path | None = None,
    *,
    output_dir: str | Path = "beats-demo",
    model: str | None = None,
    epochs: int | None = None,
    clips_per_class: int = 30,
    full_finetune: bool = False,
    say: Callable[[str], None] = print,
) -> DemoResults:
    """Generate (or load) data, validate it, fine-tune, evaluate, embed and search.

    Args:
        data: the user's dataset (a folder with one sub-folder per class, a ``.csv`` with
            ``filename`` and ``category`` columns, or ``NAME:PATH`` of a registered loader);
            ``None`` generates six classes of synthetic sounds into ``output_dir/data``.
        output_dir: where everything goes: ``data/`` (generated), ``run/`` (the training
            run folder: model, metrics, report, plots) and ``embeddings.npz``.
        model: the starting model; ``None``: the default checkpoint if it can be had,
            else a small random model (see :func:`choose_model`).
        epochs: the most epochs (see :func:`demo_training_config`).
        clips_per_class: clips per class of the generated dataset.
        full_finetune: train every layer of a pre-trained model, not only its classifier.
        say: where the narration goes (``print`` on the command line).

    Returns:
        The :class:`DemoResults`.

    Raises:
        DatasetError: the data cannot be read or trained on (with the validation report).
        CheckpointError: a model asked for by name cannot be had.
    """
    output_dir = Path(output_dir)
    say("== 1. Data")
    if data is None:
        root = output_dir / "data"
        say(f"Generating {clips_per_class} clips of each of six synthetic sound classes in {root} ...")
        frame = make_synthetic_dataset(root, clips_per_class=clips_per_class, seed=0)
    else:
        frame = resolve_dataset(data)
        say(f"{len(frame)} clips of {frame['category'].nunique()} classes from {data}.")

    say("\n== 2. Validation (every clip decoded)")
    prepared = BEATsTrainer.from_dataframe(frame, **DATA_SETTINGS).prepare_data()
    say(format_report(prepared.report))
    counts = prepared.frame["split"].value_counts()
    say("Split: " + ", ".join(f"{counts.get(name, 0)} {name}" for name in ("train", "val", "test")))

    say("\n== 3. Model")
    model, pretrained = choose_model(model, say=say)

    say("\n== 4. Fine-tuning")
    config = demo_training_config(
        model,
        pretrained=pretrained,
        output_dir=output_dir / "run",
        epochs=epochs,
        full_finetune=full_finetune,
    )
    trainer = BEATsTrainer.from_dataframe(prepared.frame, config=config, validate=False, **DATA_SETTINGS)
    training = trainer.train(overwrite=True)  # the demo owns its folder: a second demo replaces the first
    say(
        f"Best epoch {training.best_epoch} of {training.epochs} "
        f"(validation {training.monitor} {training.best_score:.3f})."
    )

    say("\n== 5. Evaluation on the held-out test split")
    say(format_classification_report(training.test_metrics))
    for key in ("classification_report", "confusion_matrix", "training_curves", "best_model"):
        say(f"{key.replace('_', ' ')}: {training.paths[key]}")

    say("\n== 6. Embeddings of every clip (the fine-tuned encoder, mean over time)")
    paths = prepared.frame["filename"].tolist()
    features = trainer.extract_features(paths)
    embeddings = save_features(
        output_dir / "embeddings.npz", features, paths, metadata={"model": model, "pooling": "mean"}
    )
    say(f"{features.shape[0]} embeddings of {features.shape[1]} values: {embeddings}")

    say("\n== 7. Similarity search")
    query, hits, agreement = _similarity_check(features, prepared.frame)
    say(f"Clips most similar to {Path(query).name} ({_label_of(prepared.frame, query)}):")
    for hit in hits:
        say(f"  {hit.score:6.3f}  {Path(hit.path).name}  ({_label_of(prepared.frame, hit.path)})")
    say(
        f"Over all test clips, {agreement:.0%} of the {NEIGHBOURS} nearest clips share the query's class "
        f"(chance: about {1 / prepared.frame['category'].nunique():.0%})."
    )
    return DemoResults(model, pretrained, prepared.frame, training, embeddings, query, hits, agreement)


def _similarity_check(features: np.ndarray, frame: pd.DataFrame) -> tuple[str, list[SearchHit], float]:
    """Search the nearest clips of every test clip; the first test clip's hits and the class agreement."""
    paths = frame["filename"].tolist()
    labels = frame["category"].to_numpy()
    test_rows = np.flatnonzero(frame["split"].to_numpy() == "test")
    results = FeatureIndex(features, paths).search(features[test_rows], k=NEIGHBOURS + 1)
    neighbours = [
        [hit for hit in hits if hit.index != row][:NEIGHBOURS]
        for row, hits in zip(test_rows, results, strict=True)
    ]
    agreement = np.mean(
        [
            np.mean([labels[hit.index] == labels[row] for hit in hits])
            for row, hits in zip(test_rows, neighbours, strict=True)
        ]
    )
    return paths[test_rows[0]], neighbours[0], float(agreement)


def _label_of(frame: pd.DataFrame, path: str) -> str:
    return str(frame.loc[frame["filename"] == path, "category"].iloc[0])
