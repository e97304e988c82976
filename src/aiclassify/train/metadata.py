"""``metadata.json``: what a predictor needs to use a trained model, and where the model came from."""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import asdict
from typing import Any

import keras
import numpy as np
import PIL
import tensorflow as tf

from aiclassify import LABEL_NAMES, __version__
from aiclassify.config import Config
from aiclassify.data.layouts import DatasetSplits


def library_versions() -> dict[str, str]:
    """Versions that decide whether a saved model loads and behaves the same elsewhere (keras-hub's
    too once loaded: a vit_b16 model.keras needs it)."""
    versions = {
        "aiclassify": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }
    if "keras_hub" in sys.modules:
        versions["keras_hub"] = sys.modules["keras_hub"].__version__
    return versions


def build_metadata(
    config: Config,
    splits: DatasetSplits,
    skipped: list,
    model: keras.Model,
    precision: str,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """What a predictor needs to use the model correctly, and where it came from."""
    return {
        "name": config.name,
        "model": config.model.name,
        "parameters": int(model.count_params()),
        "image_size": config.data.image_size,
        "input": (
            "RGB uint8 0-255 pixels, resized with antialiasing (training: random native-resolution "
            "crops of larger images when data.train_crop is set); rescaling is inside the model"
        ),
        "filter": {
            "name": config.data.filter,
            "sigma": config.data.filter_sigma,
            "kernel_size": config.data.filter_kernel_size,
        },
        "augment": list(config.train.augment),
        "output": "probability that the image is AI-generated",
        "demo": config.data.source == "demo",  # trained on synthetic toy images: detects nothing real
        "classes": {str(index): name for index, name in enumerate(LABEL_NAMES)},
        "class_folders": {"0": splits.class_folders.get("real"), "1": splits.class_folders.get("fake")},
        "threshold": config.export.threshold,
        "precision": precision,
        "dataset": {
            "source": config.data.source,
            "key": config.data.dataset,
            "root": str(splits.root),
            "counts": splits.counts(),
            "carved_splits": list(splits.carved_splits),
            "skipped_files": [asdict(item) for item in skipped],
        },
        "metrics": {split: metrics[split] for split in ("validation", "test")},
        "train_seconds": metrics["train_seconds"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": library_versions(),
    }
