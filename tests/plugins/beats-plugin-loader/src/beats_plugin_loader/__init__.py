"""A third-party dataset loader: ``labels.tsv`` lines of ``<label><TAB><path relative to root>``."""

from pathlib import Path

import pandas as pd

from beats_core import hookimpl


def load_tsv_list(root, label_prefix=""):
    """Read ``root/labels.tsv`` into the standard frame; ``label_prefix`` is prepended to labels."""
    root = Path(root)
    rows = []
    for line in (root / "labels.tsv").read_text().splitlines():
        if line.strip():
            label, path = line.split("\t")
            rows.append(
                {"filename": str(root / path), "category": label_prefix + label, "source": "tsv-list"}
            )
    return pd.DataFrame(rows)


@hookimpl
def beats_dataset_loaders():
    return {"tsv-list": load_tsv_list}
