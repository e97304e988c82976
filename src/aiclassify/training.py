"""Training runs: data, model, ``model.fit`` with stock callbacks, evaluation and export."""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import platform
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keras
import numpy as np
import PIL
import tensorflow as tf

from aiclassify import LABEL_NAMES, __version__, runs
from aiclassify.config import Config
from aiclassify.data.augment import AugmentOptions, make_augmenter
from aiclassify.data.layouts import DatasetSplits, load_splits
from aiclassify.data.pipeline import make_dataset
from aiclassify.data.sources import dataset_root
from aiclassify.data.validate import drop_unreadable
from aiclassify.export import export_saved_model
from aiclassify.filters import make_filter
from aiclassify.metrics import binary_metrics
from aiclassify.models import build_model

logger = logging.getLogger("aiclassify.train")

PRECISIONS = ("float32", "mixed_float16")
LR_SCHEDULES = ("constant", "cosine")
STRATEGIES = ("none", "mirrored", "multi_worker")
KERAS_DATASET_NOISE = (  # Keras warns on every finite tf.data input whose length it cannot know
    r"Your input ran out of data",
    r"`shuffle=True` was passed",
)


def enable_gpu_memory_growth() -> list:
    """Let TensorFlow grow GPU memory as needed (a 4 GB card fits nothing else otherwise)."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised: the setting is fixed
            tf.config.experimental.set_memory_growth(gpu, True)
    return gpus


def choose_precision(requested: str, has_gpu: bool) -> str:
    """The dtype policy to train with: mixed float16 only where a GPU makes it pay."""
    if requested not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}. Received: precision={requested!r}")
    if requested == "mixed_float16" and not has_gpu:
        logger.warning("No GPU found: mixed_float16 is slow on CPU, so this run trains in float32.")
        return "float32"
    return requested


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``train.distribute`` (multi_worker reads TF_CONFIG).

    ``mirrored`` replicates over every GPU, or over the logical CPU devices where there is none.
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"train.distribute must be one of {STRATEGIES}. Received: distribute={name!r}")


def prepare_data(config: Config, workdir: Path) -> tuple[DatasetSplits, dict[str, tf.data.Dataset], list]:
    """Discover, validate and build the train/validation/test pipelines."""
    data, train = config.data, config.train
    augment = make_augmenter(train.augment, augment_options(config))  # fails fast on a bad name
    splits = load_splits(dataset_root(data, train.seed), data.val_fraction, data.test_fraction, train.seed)
    skipped = []
    for name, samples in splits.splits.items():
        splits.splits[name], dropped = drop_unreadable(samples)
        skipped.extend(dropped)
    if skipped:
        logger.warning("Skipped %d unreadable file(s); listed in %s.", len(skipped), runs.METADATA_FILE)
    datasets = {
        name: make_dataset(
            samples,
            data.image_size,
            train.batch_size,
            training=name == "train",
            seed=train.seed,
            cache=data.cache,
            cache_dir=workdir / "cache" / name,
            shuffle_buffer=data.shuffle_buffer,
            augment=augment,
        )
        for name, samples in splits.splits.items()
    }
    return splits, datasets, skipped


def augment_options(config: Config) -> AugmentOptions:
    """The ``train.augment_*`` strengths."""
    train = config.train
    return AugmentOptions(
        rotation_degrees=train.augment_rotation_degrees,
        min_scale=train.augment_min_scale,
        noise_sigma=train.augment_noise_sigma,
        color_strength=train.augment_color_strength,
        jpeg_min_quality=train.augment_jpeg_min_quality,
    )


def learning_rate(
    config: Config, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The configured learning rate: a constant, or a cosine decay to 0 over every training step."""
    train = config.train
    if train.lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"train.lr_schedule must be one of {LR_SCHEDULES}. Received: lr_schedule={train.lr_schedule!r}"
        )
    if train.lr_schedule == "constant":
        return train.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        train.learning_rate, decay_steps=max(1, train.epochs * steps_per_epoch)
    )


def compile_model(config: Config, steps_per_epoch: int = 1) -> keras.Model:
    """Build and compile the configured model (call inside the strategy scope)."""
    model = build_model(
        config.model.name,
        config.data.image_size,
        dropout=config.model.dropout,
        padding=config.model.padding,
        bn_momentum=config.model.bn_momentum,
        filter_name=config.data.filter,
        filter_sigma=config.data.filter_sigma,
        filter_kernel_size=config.data.filter_kernel_size,
    )
    optimizer = keras.optimizers.get(
        {
            "class_name": config.train.optimizer,
            "config": {"learning_rate": learning_rate(config, steps_per_epoch)},
        }
    )
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def make_callbacks(config: Config, workdir: Path, resuming: bool) -> list[keras.callbacks.Callback]:
    """The stock callbacks, BackupAndRestore last.

    Keras runs callbacks in list order, so an epoch's history row, timing and best checkpoint are
    written before its backup: a run killed in between repeats that epoch on resume (the
    duplicate row is dropped by :func:`rewrite_history`) instead of losing its row.
    """
    train = config.train
    best_path = workdir / runs.BEST_WEIGHTS_FILE
    best_path.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(best_path),
            monitor=train.monitor,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_logged_value(workdir, train.monitor) if resuming else None,
        ),
        keras.callbacks.EarlyStopping(
            monitor=train.monitor, patience=train.early_stopping_patience, restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(str(workdir / runs.HISTORY_FILE), append=True),
        elapsed_time_callback(workdir),
    ]
    if train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(workdir / "tensorboard")))
    callbacks.append(keras.callbacks.BackupAndRestore(str(workdir / runs.BACKUP_DIR), double_checkpoint=True))
    return callbacks


def best_logged_value(workdir: Path, monitor: str) -> float | None:
    """The best ``monitor`` value in history.csv, so a resumed run keeps the true best checkpoint."""
    values = [float(row[monitor]) for row in read_history(workdir) if row.get(monitor)]
    if not values:
        return None
    return max(values) if "acc" in monitor or "auc" in monitor else min(values)


def read_history(workdir: Path) -> list[dict[str, str]]:
    """Rows of history.csv, the last one kept where an epoch was logged twice across a resume."""
    path = workdir / runs.HISTORY_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = {row["epoch"]: row for row in csv.DictReader(handle)}
    return sorted(rows.values(), key=lambda row: int(row["epoch"]))


def rewrite_history(workdir: Path) -> None:
    """Drop duplicate epoch rows that an interrupted and resumed run can leave."""
    rows = read_history(workdir)
    if not rows:
        return
    with (workdir / runs.HISTORY_FILE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def elapsed_time_callback(workdir: Path) -> keras.callbacks.Callback:
    """Record cumulative training seconds at each epoch end, across resumed sessions."""
    path = workdir / runs.TIMING_FILE
    previous = runs.read_json(path)["train_seconds"] if path.is_file() else 0.0
    started = time.perf_counter()

    def on_epoch_end(epoch: int, logs: dict | None = None) -> None:
        seconds = previous + time.perf_counter() - started
        runs.write_json(path, {"epochs_completed": epoch + 1, "train_seconds": round(seconds, 3)})

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def predict_split(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted probabilities for every example of a (non-shuffled) dataset."""
    labels = np.concatenate([y.numpy() for _, y in dataset])
    probabilities = model.predict(dataset.map(lambda x, _: x), verbose=0).ravel()
    return labels, probabilities


def library_versions() -> dict[str, str]:
    """Versions that decide whether a saved model loads and behaves the same elsewhere."""
    return {
        "aiclassify": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }


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
        "input": "RGB uint8 0-255 pixels, resized with antialiasing; rescaling is inside the model",
        "filter": {
            "name": config.data.filter,
            "sigma": config.data.filter_sigma,
            "kernel_size": config.data.filter_kernel_size,
        },
        "augment": list(config.train.augment),
        "output": "probability that the image is AI-generated",
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


def run(config: Config, workdir: Path, overwrite: bool = False) -> dict[str, Any]:
    """Train, evaluate and export one run into ``workdir``; return its metrics."""
    workdir = Path(workdir)
    make_filter(config.data.filter, config.data.filter_sigma, config.data.filter_kernel_size)  # validate
    make_augmenter(config.train.augment, augment_options(config))  # before the run directory is made
    learning_rate(config, steps_per_epoch=1)  # validate
    resuming = runs.prepare_workdir(config, workdir, overwrite)
    logger.info("%s run '%s' in %s", "Resuming" if resuming else "Starting", config.name, workdir)
    has_gpu = bool(enable_gpu_memory_growth())
    precision = choose_precision(config.train.precision, has_gpu)
    keras.utils.set_random_seed(config.train.seed)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        with warnings.catch_warnings():
            for noise in KERAS_DATASET_NOISE:
                warnings.filterwarnings("ignore", message=noise, category=UserWarning)
            return _train_and_export(config, workdir, resuming, precision)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train_and_export(config: Config, workdir: Path, resuming: bool, precision: str) -> dict[str, Any]:
    splits, datasets, skipped = prepare_data(config, workdir)
    logger.info("Images per split: %s", splits.counts())
    strategy = make_strategy(config.train.distribute)
    logger.info(
        "Training %s on %d replica(s) in %s", config.model.name, strategy.num_replicas_in_sync, precision
    )
    steps_per_epoch = math.ceil(len(splits.splits["train"]) / config.train.batch_size)
    with strategy.scope():
        model = compile_model(config, steps_per_epoch)
    model.fit(
        datasets["train"],
        validation_data=datasets["validation"],
        epochs=config.train.epochs,
        callbacks=make_callbacks(config, workdir, resuming),
        verbose=config.train.verbose,
    )
    rewrite_history(workdir)
    best_weights = workdir / runs.BEST_WEIGHTS_FILE
    if best_weights.is_file():
        model.load_weights(str(best_weights))
    model.save(workdir / runs.MODEL_FILE)
    threshold = config.export.threshold
    metrics: dict[str, Any] = {
        split: binary_metrics(*predict_split(model, datasets[split]), threshold=threshold)
        for split in ("validation", "test")
    }
    timing = runs.read_json(workdir / runs.TIMING_FILE)
    metrics.update(timing, best_epoch=_best_epoch(workdir, config.train.monitor))
    runs.write_json(workdir / runs.METRICS_FILE, metrics)
    if config.export.saved_model:
        export_saved_model(model, workdir / runs.SAVED_MODEL_DIR, config.data.image_size)
    metadata = build_metadata(config, splits, skipped, model, precision, metrics)
    runs.write_json(workdir / runs.METADATA_FILE, metadata)
    logger.info(
        "Done in %.1f s: validation accuracy %.4f, test accuracy %.4f. Run directory: %s",
        timing["train_seconds"],
        metrics["validation"]["accuracy"],
        metrics["test"]["accuracy"],
        workdir,
    )
    return metrics


def _best_epoch(workdir: Path, monitor: str) -> int | None:
    best = best_logged_value(workdir, monitor)
    for row in read_history(workdir):
        if row.get(monitor) and float(row[monitor]) == best:
            return int(row["epoch"]) + 1
    return None
