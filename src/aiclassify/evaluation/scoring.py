"""Score image files with a run's own model, through its exported bytes signature.

Images reach the model exactly as in serving: encoded bytes -> ``serving_default`` (which decodes
and resizes with :mod:`aiclassify.preprocessing`). A run exported without a SavedModel is scored
with ``model.keras`` behind the same :func:`aiclassify.preprocessing.decode_batch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from aiclassify import runs
from aiclassify.config import Config, from_dict
from aiclassify.data.layouts import Sample, load_splits
from aiclassify.data.sources import dataset_root
from aiclassify.data.validate import drop_unreadable

logger = logging.getLogger(__name__)

Transform = Callable[[bytes], bytes]


@dataclass(frozen=True)
class ScoredSet:
    """Images of one evaluation set, their labels and predicted P(AI-generated)."""

    name: str
    paths: list[str]
    labels: np.ndarray
    probabilities: np.ndarray


def load_run_config(run_dir: Path) -> Config:
    """The resolved configuration a run was trained with."""
    path = Path(run_dir) / runs.CONFIG_FILE
    return from_dict(Config, yaml.safe_load(path.read_text()) or {}, str(path))


def evaluation_splits(run_dir: Path, data_dir: Path | None = None) -> tuple[Path, dict[str, list[Sample]]]:
    """The run's validation and test samples (the same seeded splits), or those of a copy in ``data_dir``.

    Unreadable files are dropped, as in training.
    """
    config = load_run_config(run_dir)
    seed = config.train.seed
    root = Path(data_dir) if data_dir else dataset_root(config.data, seed)
    found = load_splits(root, config.data.val_fraction, config.data.test_fraction, seed)
    splits = {name: drop_unreadable(found.splits[name])[0] for name in ("validation", "test")}
    return found.root, splits


def folder_samples(directory: Path, seed: int = 0) -> list[Sample]:
    """Every readable image of a dataset folder (all of its splits), for out-of-distribution sets."""
    found = load_splits(Path(directory), 0.0, 0.0, seed)
    samples = [sample for split in found.splits.values() for sample in split]
    return drop_unreadable(samples)[0]


class RunScorer:
    """Scores encoded images with a run's SavedModel (or ``model.keras``), in batches.

    ``model`` (a Keras model taking the run's 0-255 pixels, e.g. the run's model with another
    input filter) is scored instead, behind the same :func:`aiclassify.preprocessing.decode_batch`.
    """

    def __init__(self, run_dir: Path, batch_size: int = 64, model=None):
        run_dir = Path(run_dir)
        self.batch_size = batch_size
        self.metadata = runs.read_metadata(run_dir)
        self.image_size = int(self.metadata["image_size"])
        saved_model = run_dir / runs.SAVED_MODEL_DIR
        if model is not None:
            self._score = self._pixels_fn(model)
        elif saved_model.is_dir():
            self._score = self._saved_model_fn(saved_model)
        else:
            self._score = self._keras_fn(run_dir)

    @staticmethod
    def _saved_model_fn(path: Path) -> Callable[[list[bytes]], np.ndarray]:
        import tensorflow as tf

        from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, load_saved_model

        serve = load_saved_model(path).signatures[BYTES_SIGNATURE]
        return lambda batch: serve(image_bytes=tf.constant(batch, dtype=tf.string))[OUTPUT_KEY].numpy()

    def _keras_fn(self, run_dir: Path) -> Callable[[list[bytes]], np.ndarray]:
        from aiclassify.models import load_keras_model

        logger.info("No %s in %s: scoring with %s.", runs.SAVED_MODEL_DIR, run_dir, runs.MODEL_FILE)
        return self._pixels_fn(load_keras_model(run_dir / runs.MODEL_FILE))

    def _pixels_fn(self, model) -> Callable[[list[bytes]], np.ndarray]:
        import tensorflow as tf

        from aiclassify.preprocessing import decode_batch

        size = self.image_size

        def score(batch: list[bytes]) -> np.ndarray:
            pixels = tf.cast(decode_batch(tf.constant(batch, dtype=tf.string), size), tf.float32)
            return np.asarray(model(pixels, training=False)).reshape(-1)

        return score

    def score_bytes(self, images: Sequence[bytes]) -> np.ndarray:
        """P(AI-generated) for each encoded image."""
        out = [
            self._score(list(images[i : i + self.batch_size])) for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def score_samples(
        self, name: str, samples: Sequence[Sample], transform: Transform | None = None
    ) -> ScoredSet:
        """Read, optionally transform, and score image files (reading one batch at a time)."""
        probabilities = []
        for start in range(0, len(samples), self.batch_size):
            batch = [Path(s.path).read_bytes() for s in samples[start : start + self.batch_size]]
            if transform is not None:
                batch = [transform(image) for image in batch]
            probabilities.append(self.score_bytes(batch))
        return ScoredSet(
            name=name,
            paths=[s.path for s in samples],
            labels=np.array([s.label for s in samples], dtype=int),
            probabilities=np.concatenate(probabilities) if probabilities else np.zeros(0),
        )
