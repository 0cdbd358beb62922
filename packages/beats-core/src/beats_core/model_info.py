"""Where a pretrained checkpoint comes from and what it is: the entries of the model registry."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from beats_core.errors import ConfigError

__all__ = ["REPO_TYPES", "ModelInfo"]

#: The Hugging Face Hub repository types a checkpoint can live in.
REPO_TYPES = ("model", "dataset", "space")

_REPO_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelInfo:
    """Where a pretrained checkpoint comes from and what it is.

    The checkpoint is one file in the official BEATs layout (``{"cfg", "model",
    ["label_dict"]}``) in a Hugging Face Hub repository.

    Attributes:
        repo_id: the Hub repository, ``"owner/name"``.
        filename: the path of the checkpoint file inside the repository.
        repo_type: ``"model"``, ``"dataset"`` or ``"space"``.
        revision: the branch, tag or commit to download; a 40-hex commit pins the file.
        sha256: the file's SHA-256 as 64 lowercase hex digits, when known; every download
            is checked against it.
        size: the file's size in bytes, when known.
        description: one line about the checkpoint: architecture, training data, paper.
        licence: the licence of the weights, as an SPDX identifier (``"mit"``).
        source: the URL of the original release (code repository, paper or model card).
        finetuned: whether the checkpoint is a fine-tuned classifier (it has a
            ``predictor`` head and a ``label_dict``).
        num_classes: the number of classes of a fine-tuned classifier, else ``None``.

    Raises:
        ConfigError: a field has an invalid value; the message names the field.
    """

    repo_id: str
    filename: str
    repo_type: str = "model"
    revision: str = "main"
    sha256: str | None = None
    size: int | None = None
    description: str = ""
    licence: str | None = None
    source: str | None = None
    finetuned: bool = False
    num_classes: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.repo_id, str) or not _REPO_ID.fullmatch(self.repo_id):
            problems.append(f"repo_id must look like 'owner/name', got {self.repo_id!r}")
        if not isinstance(self.filename, str) or not self.filename or self.filename.startswith("/"):
            problems.append(f"filename must be a path inside the repository, got {self.filename!r}")
        if self.repo_type not in REPO_TYPES:
            problems.append(f"repo_type must be one of {list(REPO_TYPES)}, got {self.repo_type!r}")
        if not isinstance(self.revision, str) or not self.revision:
            problems.append(f"revision must be a branch, tag or commit, got {self.revision!r}")
        if self.sha256 is not None and not (isinstance(self.sha256, str) and _SHA256.fullmatch(self.sha256)):
            problems.append(f"sha256 must be 64 lowercase hexadecimal digits, got {self.sha256!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size <= 0):
            problems.append(f"size must be a positive number of bytes, got {self.size!r}")
        if self.num_classes is not None and (not isinstance(self.num_classes, int) or self.num_classes <= 0):
            problems.append(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if problems:
            raise ConfigError(
                f"invalid ModelInfo for {self.repo_id!r}/{self.filename!r}: " + "; ".join(problems)
            )

    @property
    def uri(self) -> str:
        """The file as an ``hf://`` URI (the form ``huggingface_hub.HfFileSystem`` reads).

        Example: ``hf://datasets/ninanor/beats-checkpoints@main/BEATs_iter3_plus_AS2M.pt``.
        """
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"hf://{prefix}{self.repo_id}@{quote(self.revision, safe='')}/{self.filename}"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON-serialisable), plus ``uri``."""
        return {**dataclasses.asdict(self), "uri": self.uri}
