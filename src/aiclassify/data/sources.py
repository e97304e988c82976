"""Where a configured dataset lives on disk, and how to get it when it is missing."""

from __future__ import annotations

import typing
from pathlib import Path

from aiclassify.config import DataConfig, DataSource
from aiclassify.data.demo import write_demo_dataset

KAGGLE_DATASETS = {
    "faces": "xhlulu/140k-real-and-fake-faces",
    "general": "sattyam96/realifake",
    "cifake": "birdy654/cifake-real-and-ai-generated-synthetic-images",
}
SOURCES = typing.get_args(DataSource)


class DatasetNotFoundError(FileNotFoundError):
    """The configured dataset is not on disk; the message says how to get it."""


def dataset_root(data: DataConfig, seed: int) -> Path:
    """The folder holding the configured dataset, generating the demo set when asked for."""
    if data.source == "demo":
        path = Path(data.path) if data.path else None
        return write_demo_dataset(path, data.demo_images_per_class, data.demo_image_size, seed)
    if data.source != "folder":
        raise ValueError(f"data.source must be one of {SOURCES}. Received: source={data.source!r}")
    if data.dataset and data.dataset not in KAGGLE_DATASETS:
        raise ValueError(
            f"Unknown dataset key. Valid keys: {sorted(KAGGLE_DATASETS)}. Received: dataset={data.dataset!r}"
        )
    if not data.path:
        raise DatasetNotFoundError("data.path is empty: set it to the folder holding the images.")
    path = Path(data.path)
    if not path.is_dir():
        hint = ""
        if data.dataset:
            hint = (
                f" Download the Kaggle dataset {KAGGLE_DATASETS[data.dataset]} with:\n"
                f"    aiclassify data download {data.dataset} --dest {path}\n"
                "or point the run at a copy with --set data.path=DIR."
            )
        raise DatasetNotFoundError(f"Dataset folder not found: {path}.{hint}")
    return path
