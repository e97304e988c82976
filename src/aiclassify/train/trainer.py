"""Training: config -> data -> model -> ``model.fit`` -> metrics -> export, into one run directory."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from aiclassify import runs
from aiclassify.config import Config
from aiclassify.data.augment import AugmentOptions, degrade_for_validation, make_augmenter, make_degrader
from aiclassify.data.layouts import DatasetSplits, load_splits
from aiclassify.data.pipeline import make_dataset, with_degraded_copies
from aiclassify.data.sources import dataset_root
from aiclassify.data.validate import drop_unreadable
from aiclassify.export import export_saved_model
from aiclassify.filters import make_filter
from aiclassify.metrics import binary_metrics
from aiclassify.models import build_from_config, load_pretrained
from aiclassify.train.callbacks import best_epoch, make_callbacks, rewrite_history
from aiclassify.train.cluster import check_same_start, fit_across_workers, worker_workdir
from aiclassify.train.devices import choose_precision, enable_gpu_memory_growth, make_strategy
from aiclassify.train.metadata import build_metadata

logger = logging.getLogger("aiclassify.train")

KERAS_DATASET_NOISE = (  # Keras warns on every finite tf.data input whose length it cannot know
    r"Your input ran out of data",
    r"`shuffle=True` was passed",
)


def prepare_data(
    config: Config, workdir: Path, full_batches: bool = False
) -> tuple[DatasetSplits, dict[str, tf.data.Dataset], list]:
    """Discover, validate and build the train/validation/test pipelines.

    ``full_batches`` (training on several replicas) drops each epoch's last partial training
    batch: it would leave some replica an empty slice, and on CPU TensorFlow's oneDNN kernels fail
    the training step on an empty batch ("input depth must be evenly divisible by filter depth").
    The training images shuffle anew every epoch, so a different few are left out each time.

    Training images get ``train.augment`` then ``train.degrade`` (and ``data.train_crop``'s
    native-resolution crop first). ``datasets["validation_fit"]`` is what ``model.fit`` monitors
    (early stopping and checkpoints on ``train.monitor``, and history.csv's ``val_*``
    columns): the clean validation split, or with ``train.validation_degraded`` the clean split
    plus one degraded copy of each image, drawn with a fixed seed per image so that every epoch
    sees the same copies. The copies use ``train.degrade``'s strengths with every probability
    raised to at least 0.5 (:func:`aiclassify.data.augment.degrade_for_validation`: a copy
    escapes all four degradations with probability at most 1/16), and no ``train.augment`` op.
    They share the clean split's cache; ``datasets["validation"]`` (metrics.json's validation
    metrics) stays clean.
    """
    data, train = config.data, config.train
    # fails fast on a bad name
    augment = make_augmenter(train.augment, augment_options(config), train.degrade)
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
            train_crop=data.train_crop,
            drop_remainder=full_batches and name == "train",
        )
        for name, samples in splits.splits.items()
    }
    datasets["validation_fit"] = datasets["validation"]
    if train.validation_degraded:
        degrader = make_degrader(degrade_for_validation(train.degrade))
        datasets["validation_fit"] = with_degraded_copies(
            datasets["validation"], degrader, train.seed, train.batch_size
        )
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
    if train.lr_schedule == "constant":
        return train.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        train.learning_rate, decay_steps=max(1, train.epochs * steps_per_epoch)
    )


def compile_model(config: Config, steps_per_epoch: int = 1) -> keras.Model:
    """Build and compile the configured model (call inside the strategy scope)."""
    model = load_pretrained(build_from_config(config), config.model.pretrained)
    optimizer = keras.optimizers.get(
        {
            "class_name": config.train.optimizer,
            "config": {"learning_rate": learning_rate(config, steps_per_epoch)},
        }
    )
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def predict_split(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted probabilities for every example of a (non-shuffled) dataset."""
    labels = np.concatenate([y.numpy() for _, y in dataset])
    probabilities = model.predict(dataset.map(lambda x, _: x), verbose=0).ravel()
    return labels, probabilities


def train(config: Config, workdir: Path, overwrite: bool = False) -> dict[str, Any]:
    """Train, evaluate and export one run into ``workdir`` (resuming an interrupted one); return its metrics.

    The dataset's presence and the options the config schema cannot check alone (filter and
    augmentation strengths, the model's options) are checked before the run directory is made.
    With ``train.distribute: multi_worker`` every worker calls this with the same arguments; only
    the chief writes ``workdir`` (:mod:`aiclassify.train.cluster`).
    """
    has_gpu = bool(enable_gpu_memory_growth())
    # MultiWorkerMirroredStrategy configures TensorFlow's collective ops: before any other op runs.
    strategy = make_strategy(config.train.distribute)
    dataset_root(config.data, config.train.seed)
    make_filter(config.data.filter, config.data.filter_sigma, config.data.filter_kernel_size)
    make_augmenter(config.train.augment, augment_options(config))
    load_pretrained(build_from_config(config), config.model.pretrained)
    with worker_workdir(strategy, Path(workdir), overwrite) as workdir:
        resuming = runs.prepare_workdir(config, workdir, overwrite)
        logger.info("%s run '%s' in %s", "Resuming" if resuming else "Starting", config.name, workdir)
        check_same_start(strategy, runs.backup_epoch(workdir))
        precision = choose_precision(config.train.precision, has_gpu)
        keras.utils.set_random_seed(config.train.seed)
        previous_policy = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy(precision)
        try:
            with warnings.catch_warnings():
                for noise in KERAS_DATASET_NOISE:
                    warnings.filterwarnings("ignore", message=noise, category=UserWarning)
                return _train_and_export(config, workdir, strategy, precision, resuming)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)


def _train_and_export(
    config: Config, workdir: Path, strategy: tf.distribute.Strategy, precision: str, resuming: bool
) -> dict[str, Any]:
    full_batches = strategy.num_replicas_in_sync > 1
    splits, datasets, skipped = prepare_data(config, workdir, full_batches)
    logger.info("Images per split: %s", splits.counts())
    logger.info(
        "Training %s on %d replica(s) in %s", config.model.name, strategy.num_replicas_in_sync, precision
    )
    train_images, batch_size = len(splits.splits["train"]), config.train.batch_size
    steps_per_epoch = train_images // batch_size if full_batches else math.ceil(train_images / batch_size)
    if steps_per_epoch == 0:
        raise ValueError(
            "train.batch_size is larger than the training split, so no full batch is left for several "
            f"replicas. Received: batch_size={batch_size}, training images={train_images}"
        )
    with strategy.scope():
        model = compile_model(config, steps_per_epoch)
    fit_across_workers(model, datasets["train"])
    model.fit(
        datasets["train"],
        validation_data=datasets["validation_fit"],
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
    metrics.update(timing, best_epoch=best_epoch(workdir, config.train.monitor))
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
