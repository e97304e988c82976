"""The images evaluation scores, and scoring them through the run's predictor.

Images reach the model exactly as in serving: encoded bytes -> :class:`aiclassify.predict.Predictor`
(decoded and resized with :mod:`aiclassify.preprocessing` as the exported ``serving_default``
signature does it, a batch at a time, then scored through ``serve_pixels``: the same numbers).
Scores are the raw model outputs; calibration is applied by the report where it says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiclassify import runs
from aiclassify.data.layouts import Sample, load_splits, single_class_samples
from aiclassify.data.sources import dataset_root
from aiclassify.data.validate import drop_unreadable
from aiclassify.predict import Predictor

Transform = Callable[[bytes], bytes]


@dataclass(frozen=True)
class ScoredSet:
    """Images of one evaluation set, their labels and raw predicted P(AI-generated)."""

    name: str
    paths: list[str]
    labels: np.ndarray
    probabilities: np.ndarray


def evaluation_splits(run_dir: Path, data_dir: Path | None = None) -> tuple[Path, dict[str, list[Sample]]]:
    """The run's validation and test samples (the same seeded splits), or those of a copy in ``data_dir``.

    Unreadable files are dropped, as in training.
    """
    config = runs.read_config(run_dir)
    seed = config.train.seed
    root = Path(data_dir) if data_dir else dataset_root(config.data, seed)
    found = load_splits(
        root, config.data.val_fraction, config.data.test_fraction, config.data.carve_seed(seed)
    )
    splits = {name: drop_unreadable(found.splits[name])[0] for name in ("validation", "test")}
    return found.root, splits


def folder_samples(directory: Path, seed: int = 0) -> list[Sample]:
    """Every readable image of a dataset folder (all of its splits), or of a folder holding a
    single class folder (``fake/`` or ``real/`` alone), for out-of-distribution sets."""
    samples = single_class_samples(Path(directory))
    if samples is None:
        found = load_splits(Path(directory), 0.0, 0.0, seed)
        samples = [sample for split in found.splits.values() for sample in split]
    return drop_unreadable(samples)[0]


def score_samples(
    predictor: Predictor, name: str, samples: Sequence[Sample], transform: Transform | None = None
) -> ScoredSet:
    """Read, optionally transform, and score image files, one predictor batch at a time."""
    probabilities = []
    for start in range(0, len(samples), predictor.batch_size):
        batch = [Path(s.path).read_bytes() for s in samples[start : start + predictor.batch_size]]
        if transform is not None:
            batch = [transform(image) for image in batch]
        probabilities.append(predictor.probabilities(batch))
    return ScoredSet(
        name=name,
        paths=[s.path for s in samples],
        labels=np.array([s.label for s in samples], dtype=int),
        probabilities=np.concatenate(probabilities) if probabilities else np.zeros(0),
    )
