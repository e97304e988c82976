"""A classical baseline's run: images -> features -> scikit-learn fit -> Keras model -> run directory.

:func:`aiclassify.train.train` hands the ``model.name`` values of
:data:`aiclassify.classical.CLASSICAL_MODELS` here. The run directory is a Keras run's: ``config.yaml``,
``model.keras``, ``metrics.json`` (validation and test metrics of the Keras model, ``train_seconds``;
no epochs), ``saved_model/`` and ``metadata.json``, whose ``classical`` section records the sample
size, the chosen hyperparameters and the grid search. There is no ``history.csv``: a fit has no
epochs. Images come through the project's tf.data pipeline
(:func:`aiclassify.data.pipeline.make_dataset`), clean: ``train.augment`` and ``train.degrade`` are
not used. Everything runs in float32 (the fitted layers and the co-occurrence features in float64),
whatever ``train.precision`` says.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from aiclassify import runs
from aiclassify.classical.fit import PLATT_METHOD, fit_logistic, fit_platt, fit_svm
from aiclassify.classical.keras_models import (
    FEATURES_LAYER,
    features_of,
    fitted_svm_model,
    set_logistic_weights,
)
from aiclassify.config import Config
from aiclassify.data.layouts import DatasetSplits, Sample, load_splits
from aiclassify.data.pipeline import make_dataset
from aiclassify.data.sources import dataset_root
from aiclassify.data.validate import drop_unreadable
from aiclassify.export import export_saved_model
from aiclassify.metrics import binary_metrics
from aiclassify.models import build_from_config, model_options
from aiclassify.train.devices import enable_gpu_memory_growth
from aiclassify.train.metadata import build_metadata
from aiclassify.train.trainer import KERAS_DATASET_NOISE, predict_split

logger = logging.getLogger("aiclassify.train")

PRECISION = "float32"
LOGISTIC_FEATURES = {
    "logistic_pixels": lambda model: "flattened pixels / 255",
    "cooccurrence_logistic": lambda model: model.get_layer(FEATURES_LAYER).description(),
}
"""The logistic-regression baselines, each with what metadata.json says its model's features are."""


def balanced_sample(samples: list[Sample], limit: int) -> list[Sample]:
    """At most ``limit`` of ``samples``, half of each class where both have enough, order kept.

    ``samples`` come shuffled with the run's seed (:func:`aiclassify.data.layouts.load_splits`), so
    the first images of each class are a seeded sample.
    """
    counts = [sum(1 for s in samples if s.label == label) for label in (0, 1)]
    real = min(counts[0], max(limit // 2, limit - counts[1]))
    quota = {0: real, 1: min(counts[1], limit - real)}
    kept = []
    for sample in samples:
        if quota[sample.label] > 0:
            quota[sample.label] -= 1
            kept.append(sample)
    return kept


def feature_arrays(features: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """float64 features and int labels of every example of a (non-shuffled) dataset."""
    batches, labels = [], []
    for images, batch_labels in dataset:
        batches.append(np.asarray(features.predict_on_batch(images), dtype=np.float64))
        labels.append(batch_labels.numpy())
    features_array = np.concatenate(batches)
    return features_array.reshape(len(features_array), -1), np.concatenate(labels).astype(int)


def _warn_unused(config: Config) -> None:
    train, data = config.train, config.data
    unused = {
        "train.augment": bool(train.augment),
        "train.degrade": any(p > 0 for p in train.degrade.probabilities.values()),
        "train.validation_degraded": train.validation_degraded,
        "data.train_crop": data.train_crop,
        "train.precision": train.precision != PRECISION,
    }
    for key in (key for key, used in unused.items() if used):
        logger.warning(
            "%s is not used by %s: it fits once on clean images in float32.", key, config.model.name
        )


def _load_splits(config: Config) -> tuple[DatasetSplits, list, int]:
    data, limit = config.data, config.classical.max_train_images
    splits = load_splits(
        dataset_root(data, config.train.seed),
        data.val_fraction,
        data.test_fraction,
        data.carve_seed(config.train.seed),
    )
    available = len(splits.splits["train"])
    splits.splits["train"] = balanced_sample(splits.splits["train"], limit)
    skipped = []
    for name, samples in splits.splits.items():
        splits.splits[name], dropped = drop_unreadable(samples)
        skipped.extend(dropped)
    if skipped:
        logger.warning("Skipped %d unreadable file(s); listed in %s.", len(skipped), runs.METADATA_FILE)
    return splits, skipped, available


def train_classical(config: Config, workdir: Path, overwrite: bool = False) -> dict[str, Any]:
    """Fit ``config.model`` with scikit-learn, write the run directory into ``workdir``, return its metrics.

    A classical fit is short and keeps no backup: an interrupted run starts again.
    """
    if config.train.distribute != "none":
        raise ValueError(
            f"{config.model.name} is fitted by scikit-learn in one process. "
            f"Received: distribute={config.train.distribute!r}"
        )
    if config.model.pretrained != "none" and "pretrained" not in model_options(config.model.name):
        raise ValueError(
            f"{config.model.name} is fitted from scratch by scikit-learn: model.pretrained only names "
            f"backbone_svm's feature backbone weights. Received: pretrained={config.model.pretrained!r}"
        )
    enable_gpu_memory_growth()
    dataset_root(config.data, config.train.seed)
    _warn_unused(config)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(PRECISION)
    try:
        keras.utils.set_random_seed(config.train.seed)
        model = build_from_config(config)  # checks the model options before the run directory is made
        workdir = Path(workdir)
        runs.prepare_workdir(config, workdir, overwrite)
        logger.info("Starting run '%s' (%s, scikit-learn) in %s", config.name, config.model.name, workdir)
        with warnings.catch_warnings():
            for noise in KERAS_DATASET_NOISE:
                warnings.filterwarnings("ignore", message=noise, category=UserWarning)
            return _fit_and_export(config, workdir, model)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _fit(
    config: Config, model: keras.Model, datasets: dict[str, tf.data.Dataset]
) -> tuple[keras.Model, dict]:
    """The fitted Keras model, and what metadata.json's ``classical`` section says about the fit."""
    train = config.train
    features = features_of(model)
    x, y = feature_arrays(features, datasets["train"])
    logger.info("Fitting %s on %d images x %d features", config.model.name, x.shape[0], x.shape[1])
    summary: dict[str, Any] = {"train_images": int(x.shape[0])}
    if config.model.name in LOGISTIC_FEATURES:
        fit = fit_logistic(x, y, config.classical, train.seed)
        model = set_logistic_weights(model, fit.scaler, fit.estimator)
        summary["estimator"] = "StandardScaler + LogisticRegression (lbfgs, L2)"
        summary["features"] = f"{LOGISTIC_FEATURES[config.model.name](model)} ({x.shape[1]})"
    else:
        fit = fit_svm(x, y, config.classical, train.seed)
        val_x, val_y = feature_arrays(features, datasets["validation"])
        platt = fit_platt(fit.pipeline.decision_function(val_x), val_y)
        model = fitted_svm_model(model, fit.scaler, fit.estimator, fit.best_params["gamma"], platt)
        summary["estimator"] = "StandardScaler + SVC (RBF kernel)"
        summary["features"] = (
            f"{config.model.feature_backbone} pooled features ({x.shape[1]}), "
            f"pretrained={config.model.pretrained}"
        )
        summary["support_vectors"] = int(len(fit.estimator.support_vectors_))
        summary["calibration"] = {
            "method": PLATT_METHOD,
            "slope": float(platt.coef_[0, 0]),
            "intercept": float(platt.intercept_[0]),
            "fitted_on": "validation",
            "examples": int(val_y.size),
        }
    summary.update(best_params=fit.best_params, grid_search=fit.search)
    return model, summary


def _fit_and_export(config: Config, workdir: Path, model: keras.Model) -> dict[str, Any]:
    splits, skipped, available = _load_splits(config)
    logger.info(
        "Images per split: %s (train: %d of %d)", splits.counts(), len(splits.splits["train"]), available
    )
    data, train = config.data, config.train
    datasets = {
        name: make_dataset(
            samples,
            data.image_size,
            train.batch_size,
            training=False,
            seed=train.seed,
            cache=data.cache,
            cache_dir=workdir / "cache" / name,
            shuffle_buffer=data.shuffle_buffer,
        )
        for name, samples in splits.splits.items()
    }
    started = time.perf_counter()
    model, summary = _fit(config, model, datasets)
    summary["train_images_available"] = available
    train_seconds = time.perf_counter() - started
    model.save(workdir / runs.MODEL_FILE)
    threshold = config.export.threshold
    metrics: dict[str, Any] = {
        split: binary_metrics(*predict_split(model, datasets[split]), threshold=threshold)
        for split in ("validation", "test")
    }
    metrics.update(train_seconds=round(train_seconds, 3), epochs_completed=None, best_epoch=None)
    runs.write_json(workdir / runs.METRICS_FILE, metrics)
    if config.export.saved_model:
        export_saved_model(model, workdir / runs.SAVED_MODEL_DIR, data.image_size)
    metadata = build_metadata(config, splits, skipped, model, PRECISION, metrics)
    metadata["classical"] = summary
    runs.write_json(workdir / runs.METADATA_FILE, metadata)
    logger.info(
        "Done in %.1f s (best %s): validation accuracy %.4f, test accuracy %.4f. Run directory: %s",
        train_seconds,
        summary["best_params"],
        metrics["validation"]["accuracy"],
        metrics["test"]["accuracy"],
        workdir,
    )
    return metrics
