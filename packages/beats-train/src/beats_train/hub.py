"""Sharing a fine-tuned model on the Hugging Face Hub: the checkpoint, a model card, the configuration.

:func:`push_to_hub` uploads three files to a model repository in one commit:
``beats_checkpoint.pt`` (:data:`beats_core.registry.HUB_CHECKPOINT_FILENAME`, the official
fine-tuned checkpoint layout), ``README.md`` (the model card of :func:`model_card`) and
``config.yaml``. beats-core loads it back by repo id: ``load_checkpoint("hf-hub:owner/name")``.
The Hub settings are read when the function is called: ``HF_ENDPOINT``, ``HF_TOKEN`` (or
the token saved by ``hf auth login``).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import yaml

from beats_core.download import hub_endpoint
from beats_core.errors import ConfigError, HubError
from beats_core.registry import HUB_CHECKPOINT_FILENAME, HUB_PREFIX
from beats_train.__about__ import __version__
from beats_train.config import DataConfig, TrainingConfig
from beats_train.model import BEATsClassifier
from beats_train.results import TrainingResults

__all__ = ["model_card", "push_to_hub"]


def push_to_hub(
    model: BEATsClassifier,
    repo_id: str,
    *,
    results: TrainingResults | None = None,
    training_config: TrainingConfig | None = None,
    data_config: DataConfig | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str = "main",
) -> str:
    """Upload a fine-tuned model to a Hub model repository (created if needed), with its model card.

    Under ``accelerate launch`` only the main process uploads (the others return ``""``).

    Args:
        model: the fine-tuned classifier.
        repo_id: ``owner/name``.
        results: the training results, for the card's metrics.
        training_config: the training configuration, for the card and ``config.yaml``.
        data_config: the data configuration, for ``config.yaml``.
        private: create the repository private (``None``: the Hub's default).
        token: a token with write access (default: ``HF_TOKEN`` or the saved login).
        commit_message: the commit message.
        revision: the branch to commit to.

    Returns:
        The URL of the commit.

    Raises:
        ConfigError: ``repo_id`` is not ``owner/name``.
        HubError: the Hub refused the upload or could not be reached; the message says what to do.
    """
    from accelerate import PartialState
    from huggingface_hub import CommitOperationAdd, HfApi

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"repo_id must be 'owner/name', got {repo_id!r}")
    if not PartialState().is_main_process:
        return ""
    endpoint = hub_endpoint()
    card = model_card(model, repo_id, results=results, training_config=training_config)
    config: dict[str, Any] = {}
    if data_config is not None:
        config["data"] = data_config.to_dict()
    if training_config is not None:
        config["training"] = training_config.to_dict()
    api = HfApi(endpoint=endpoint, token=token, library_name="beats-train", library_version=__version__)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = model.save(Path(folder) / HUB_CHECKPOINT_FILENAME)
        operations = [
            CommitOperationAdd(HUB_CHECKPOINT_FILENAME, str(checkpoint)),
            CommitOperationAdd("README.md", io.BytesIO(card.encode("utf-8"))),
            CommitOperationAdd(
                "config.yaml", io.BytesIO(yaml.safe_dump(config, sort_keys=False).encode("utf-8"))
            ),
        ]
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message or "Upload fine-tuned BEATs model",
                revision=revision,
            )
        except Exception as e:  # the hub client raises its own and its HTTP library's errors
            raise _hub_error(e, repo_id, endpoint) from e
    return str(commit.commit_url)


def _hub_error(error: Exception, repo_id: str, endpoint: str) -> HubError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    detail = " ".join(str(error).split())[:300]
    if status in (401, 403):
        return HubError(
            f"the Hub at {endpoint} refused to let this account write to {repo_id!r} (HTTP {status}): log in with a "
            "token that has write access (`hf auth login`, or set HF_TOKEN, or pass token=) and check that you own "
            f"the namespace {repo_id.split('/')[0]!r}"
        )
    if status is not None:
        return HubError(
            f"uploading to {repo_id!r} on {endpoint} failed with HTTP {status}: {detail}. Try again later"
        )
    return HubError(
        f"uploading to {repo_id!r} failed: {endpoint} could not be reached ({type(error).__name__}: {detail}); "
        "check the network connection and HF_ENDPOINT"
    )


def model_card(
    model: BEATsClassifier,
    repo_id: str,
    *,
    results: TrainingResults | None = None,
    training_config: TrainingConfig | None = None,
) -> str:
    """The ``README.md`` of a pushed model: metadata, labels, metrics, configuration and how to load it.

    Args:
        model: the fine-tuned classifier.
        repo_id: the repository it goes to.
        results: the training results (metrics), if known.
        training_config: the training configuration, if known.

    Returns:
        Markdown with a YAML metadata block.
    """
    cfg = model.backbone.cfg
    labels = model.label_dict
    base = training_config.model if training_config is not None else None
    metadata: dict[str, Any] = {
        "library_name": "beats",
        "pipeline_tag": "audio-classification",
        "tags": ["audio", "audio-classification", "beats", "beats-train"],
    }
    if base is not None and base.startswith(HUB_PREFIX):
        metadata["base_model"] = base.removeprefix(HUB_PREFIX).split("@")[0]
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A BEATs audio classifier ({'multi-label' if model.multi_label else 'single-label'}, {len(labels)} classes) "
        f"fine-tuned with beats-train {__version__}" + (f" from `{base}`" if base else "") + ".",
        "",
        "## Use",
        "",
        "```python",
        "from beats_core import load_checkpoint",
        "",
        f'model, config, labels = load_checkpoint("{HUB_PREFIX}{repo_id}")',
        "```",
        "",
        "or, to predict on files and get a table of labels and probabilities:",
        "",
        "```python",
        "from beats_train import BEATsTrainer",
        "",
        f'trainer = BEATsTrainer.from_checkpoint("{HUB_PREFIX}{repo_id}")',
        'trainer.predict(["clip.wav"])',
        "```",
        "",
        f"`{HUB_CHECKPOINT_FILENAME}` is in the official BEATs checkpoint layout (`cfg`, `model`, `label_dict`, "
        "`finetuned_model=True`), so Microsoft's BEATs code loads it too. Input: 16 kHz mono audio. "
        + (
            "Outputs are independent sigmoid probabilities."
            if model.multi_label
            else "The predicted class is the largest logit (softmax probabilities)."
        ),
        "",
    ]
    if results is not None:
        lines += ["## Results", "", "| split | metric | value |", "|---|---|---|"]
        for split, metrics in (("validation", results.val_metrics), ("test", results.test_metrics or {})):
            for key in ("accuracy", "macro_f1", "map", "micro_f1"):
                if key in metrics:
                    lines.append(f"| {split} | {key} | {metrics[key]:.4f} |")
        lines += [
            "",
            f"Best epoch: {results.best_epoch} of {results.epochs} (chosen on validation {results.monitor}).",
            "",
        ]
    lines += ["## Labels", "", "| index | label |", "|---|---|"]
    lines += [f"| {index} | {label} |" for index, label in sorted(labels.items())]
    lines += [
        "",
        "## Preprocessing",
        "",
        f"Kaldi log-mel fbank (128 bins, 25 ms windows, 10 ms hop), normalised as (fbank - {cfg.fbank_mean:g}) / "
        f"(2 * {cfg.fbank_std:g}); these statistics are stored in the checkpoint's cfg (`fbank_mean`, `fbank_std`).",
        "",
        "## Model",
        "",
        f"{cfg.encoder_layers} layers, width {cfg.encoder_embed_dim}, {cfg.encoder_attention_heads} heads"
        + (
            "; the head reads a learned weighted sum of the layers (weights in cfg `beats_train.layer_weights`, "
            "used by beats-train, ignored by the official code)"
            if model.layer_weights is not None
            else ""
        )
        + ".",
        "",
    ]
    if training_config is not None:
        lines += [
            "## Training configuration",
            "",
            "```yaml",
            yaml.safe_dump(training_config.to_dict(), sort_keys=False).strip(),
            "```",
            "",
        ]
    return "\n".join(lines)
