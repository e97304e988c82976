"""An ensemble's run: finished member runs -> one averaged Keras model -> run directory.

:func:`aiclassify.train.train` hands ``model.name: ensemble`` here. Nothing trains: the members
(``model.members``, finished runs of the same data) are loaded and averaged by
:func:`aiclassify.ensemble.ensemble`. The run directory is a Keras run's without epochs:
``config.yaml``, ``model.keras``, ``metrics.json`` (validation and test metrics of the ensemble;
``train_seconds`` is the members' training time summed: a member that started from another
run's weights counts its own epochs only, and the ``ensemble`` section names what it started
from), ``saved_model/`` and ``metadata.json``,
whose ``ensemble`` section lists the members. Evaluation, calibration, release and serving then
treat it like any run.

The members must have been trained on the same validation/test split as the ensemble's (the same
``data.carve_seed`` and fractions): otherwise one member's training images would sit in the
ensemble's validation split, and its calibration and band would be fitted on images it has seen.
Train them with different ``train.seed`` values and one ``data.split_seed``.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import keras

from aiclassify import runs
from aiclassify.config import Config
from aiclassify.export import export_saved_model
from aiclassify.metrics import binary_metrics
from aiclassify.models import build_from_config
from aiclassify.train.metadata import build_metadata
from aiclassify.train.trainer import KERAS_DATASET_NOISE, predict_split, prepare_data

logger = logging.getLogger("aiclassify.train")

PRECISION = "float32"
COMBINE_RULE = "mean of the members' logits, then the sigmoid"


def member_summaries(config: Config) -> list[dict[str, Any]]:
    """Each member's folder, name, seed, starting weights, training time and test accuracy, after
    checking that it was trained for the ensemble's inputs, augmentation and validation/test split."""
    data, train = config.data, config.train
    expected_split = (data.carve_seed(train.seed), data.val_fraction, data.test_fraction)
    summaries = []
    for member in config.model.members:
        metadata = runs.read_metadata(Path(member))
        member_config = runs.read_config(Path(member))
        member_data = member_config.data
        split = (
            member_data.carve_seed(member_config.train.seed),
            member_data.val_fraction,
            member_data.test_fraction,
        )
        checks = {
            "image_size": (metadata["image_size"], data.image_size),
            "augment": (list(metadata["augment"]), list(train.augment)),
            "demo": (bool(metadata["demo"]), data.source == "demo"),
            "validation/test split (carve seed, val_fraction, test_fraction)": (split, expected_split),
        }
        for what, (found, expected) in checks.items():
            if found != expected:
                raise ValueError(
                    f"Ensemble member {member} differs from the ensemble's config in its {what}: "
                    f"it has {found}, the ensemble {expected}. Received: member={member!r}"
                )
        summaries.append(
            {
                "folder": str(member),
                "name": metadata["name"],
                "model": metadata["model"],
                "seed": member_config.train.seed,
                "started_from": member_config.model.pretrained,  # "none": random initialisation
                "parameters": metadata["parameters"],
                "train_seconds": metadata["train_seconds"],
                "test_accuracy": metadata["metrics"]["test"]["accuracy"],
            }
        )
    return summaries


def train_ensemble(config: Config, workdir: Path, overwrite: bool = False) -> dict[str, Any]:
    """Average ``config.model.members`` into one model, write its run directory into ``workdir``,
    and return its metrics."""
    if config.train.distribute != "none":
        raise ValueError(
            f"An ensemble is assembled in one process. Received: distribute={config.train.distribute!r}"
        )
    members = member_summaries(config)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(PRECISION)
    try:
        model = build_from_config(config)
        workdir = Path(workdir)
        runs.prepare_workdir(config, workdir, overwrite)
        logger.info("Starting run '%s' (ensemble of %d) in %s", config.name, len(members), workdir)
        with warnings.catch_warnings():
            for noise in KERAS_DATASET_NOISE:
                warnings.filterwarnings("ignore", message=noise, category=UserWarning)
            return _score_and_export(config, workdir, model, members)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _score_and_export(
    config: Config, workdir: Path, model: keras.Model, members: list[dict[str, Any]]
) -> dict[str, Any]:
    started = time.perf_counter()
    splits, datasets, skipped = prepare_data(config, workdir, full_batches=False)
    logger.info("Images per split: %s", splits.counts())
    model.save(workdir / runs.MODEL_FILE)
    threshold = config.export.threshold
    metrics: dict[str, Any] = {
        split: binary_metrics(*predict_split(model, datasets[split]), threshold=threshold)
        for split in ("validation", "test")
    }
    train_seconds = sum(member["train_seconds"] for member in members)
    metrics.update(train_seconds=round(train_seconds, 3), epochs_completed=None, best_epoch=None)
    runs.write_json(workdir / runs.METRICS_FILE, metrics)
    if config.export.saved_model:
        export_saved_model(model, workdir / runs.SAVED_MODEL_DIR, config.data.image_size)
    metadata = build_metadata(config, splits, skipped, model, PRECISION, metrics)
    metadata["ensemble"] = {
        "combine": COMBINE_RULE,
        "members": members,
        "assemble_seconds": round(time.perf_counter() - started, 3),
    }
    runs.write_json(workdir / runs.METADATA_FILE, metadata)
    logger.info(
        "Done: validation accuracy %.4f, test accuracy %.4f (members: %s). Run directory: %s",
        metrics["validation"]["accuracy"],
        metrics["test"]["accuracy"],
        ", ".join(f"{member['test_accuracy']:.4f}" for member in members),
        workdir,
    )
    return metrics
