"""Training: config -> data -> model -> ``model.fit`` -> metrics -> export, into one run directory.

A run trains in one phase, or in ``train.fine_tune``'s two (:func:`training_phases`): the backbone
frozen for ``frozen_epochs``, then its top layers unfrozen at a lower rate. Each phase is a
``model.fit`` continuing the same epoch count, history.csv, checkpoints and backup, so an
interrupted run resumes in the phase, with the trainable layers and the optimizer, it stopped in.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from aiclassify import runs
from aiclassify.backbones import backbone_layers, backbone_names, freeze_backbone
from aiclassify.classical import CLASSICAL_MODELS
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
from aiclassify.train.callbacks import (
    backup_phase,
    best_epoch,
    make_callbacks,
    rewrite_history,
    save_phase_backup,
)
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
    splits = load_splits(
        dataset_root(data, train.seed), data.val_fraction, data.test_fraction, data.carve_seed(train.seed)
    )
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


@dataclass(frozen=True)
class TrainingPhase:
    """One ``model.fit`` of a run: epochs ``[first_epoch, end_epoch)``, what trains, at which rate.

    ``freeze`` False trains the model as built; True freezes the backbone except its top
    ``trainable_top_layers`` layers with weights (None: all of them), BatchNormalization always
    frozen (:func:`aiclassify.backbones.freeze_backbone`).
    """

    number: int
    first_epoch: int
    end_epoch: int
    learning_rate: float
    freeze: bool = False
    trainable_top_layers: int | None = 0


def training_phases(config: Config) -> list[TrainingPhase]:
    """The run's phases: one in which every layer trains, or ``train.fine_tune``'s two.

    Phase 1 trains the head alone (backbone frozen) at ``train.learning_rate`` for
    ``fine_tune.frozen_epochs``; phase 2 the head and the backbone's top
    ``fine_tune.unfreeze_top_layers`` layers with weights (0: all) at the fine-tuning rate, to
    ``train.epochs``. Raises ``ValueError`` for a schedule on a model without a backbone.
    """
    train = config.train
    fine_tune = train.fine_tune
    if not fine_tune.enabled:
        return [TrainingPhase(1, 0, train.epochs, train.learning_rate)]
    if config.model.name not in backbone_names():
        raise ValueError(
            f"train.fine_tune freezes a backbone: model.name must be one of {backbone_names()}. "
            f"Received: model.name={config.model.name!r}, frozen_epochs={fine_tune.frozen_epochs}"
        )
    return [
        TrainingPhase(
            1, 0, fine_tune.frozen_epochs, train.learning_rate, freeze=True, trainable_top_layers=0
        ),
        TrainingPhase(
            2,
            fine_tune.frozen_epochs,
            train.epochs,
            train.fine_tune_learning_rate(),
            freeze=True,
            trainable_top_layers=fine_tune.unfreeze_top_layers or None,
        ),
    ]


def check_fine_tune(config: Config, model: keras.Model) -> None:
    """Fail unless ``train.fine_tune``'s phase 2 unfreezes layers that ``model``'s backbone has:
    at most as many as it has layers with weights, and one at least that is not BatchNormalization.

    Warns when phase 2's settings go unused (no phase 1), and when phase 1 would freeze a backbone
    that starts from random weights (``model.pretrained: none``).
    """
    fine_tune = config.train.fine_tune
    phases = training_phases(config)
    if len(phases) == 1:
        if fine_tune.unfreeze_top_layers or fine_tune.learning_rate is not None:
            logger.warning(
                "train.fine_tune.frozen_epochs is 0: no fine-tuning schedule, every layer trains from the "
                "first epoch; unfreeze_top_layers=%d and learning_rate=%s are unused.",
                fine_tune.unfreeze_top_layers,
                fine_tune.learning_rate,
            )
        return
    if config.model.pretrained == "none":
        logger.warning(
            "train.fine_tune freezes %s's randomly initialised backbone (model.pretrained=none) for %d "
            "epoch(s): only the head learns then. From scratch, set train.fine_tune.frozen_epochs=0.",
            config.model.name,
            fine_tune.frozen_epochs,
        )
    top = config.train.fine_tune.unfreeze_top_layers
    with_weights = [layer for layer in backbone_layers(model) if layer.weights]
    if top > len(with_weights):
        raise ValueError(
            f"train.fine_tune.unfreeze_top_layers exceeds the {len(with_weights)} layers with weights of "
            f"{config.model.name}'s backbone. Received: unfreeze_top_layers={top}"
        )
    unfrozen = with_weights[len(with_weights) - top :] if top else with_weights
    if all(isinstance(layer, keras.layers.BatchNormalization) for layer in unfrozen):
        raise ValueError(
            f"The top {top} layers with weights of {config.model.name}'s backbone are BatchNormalization, "
            "which stays frozen: phase 2 would train nothing more than phase 1. "
            f"Received: unfreeze_top_layers={top}"
        )


def learning_rate(
    config: Config, steps_per_epoch: int, phase: TrainingPhase | None = None
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate of ``phase`` (default: the whole run at ``train.learning_rate``): a constant,
    or a cosine decay to 0 over every training step of the phase."""
    train = config.train
    phase = phase or TrainingPhase(1, 0, train.epochs, train.learning_rate)
    if train.lr_schedule == "constant":
        return phase.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        phase.learning_rate, decay_steps=max(1, (phase.end_epoch - phase.first_epoch) * steps_per_epoch)
    )


def compile_phase(model: keras.Model, config: Config, phase: TrainingPhase, steps_per_epoch: int = 1) -> None:
    """Set ``model``'s trainable layers for ``phase`` and compile it with a new optimizer at the
    phase's rate (call inside the strategy scope)."""
    if phase.freeze:
        freeze_backbone(model, phase.trainable_top_layers)
    optimizer = keras.optimizers.get(
        {
            "class_name": config.train.optimizer,
            "config": {"learning_rate": learning_rate(config, steps_per_epoch, phase)},
        }
    )
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])


def compile_model(config: Config, steps_per_epoch: int = 1) -> keras.Model:
    """Build the configured model and compile it for its first phase (call inside the strategy scope)."""
    model = load_pretrained(build_from_config(config), config.model.pretrained)
    compile_phase(model, config, training_phases(config)[0], steps_per_epoch)
    return model


def fit_phases(
    model: keras.Model,
    config: Config,
    datasets: dict[str, tf.data.Dataset],
    workdir: Path,
    strategy: tf.distribute.Strategy,
    resuming: bool,
    steps_per_epoch: int,
) -> None:
    """``model.fit`` phase after phase (``model`` compiled for the first), resuming an interrupted run.

    A phase that the backup shows finished is skipped. A phase after the first starts by writing
    its own backup (:func:`aiclassify.train.callbacks.save_phase_backup`): its trainable layers'
    optimizer, not the previous phase's, is then what a kill before its first epoch ends resumes
    from. A run stopped on the last epoch of phase 1 runs phase 1's ``fit`` for no epoch (it only
    restores the backup), then moves on. Early stopping watches the last phase only, and the backup
    is deleted when the last phase ends.
    """
    phases = training_phases(config)
    done, started = runs.backup_epoch(workdir), backup_phase(workdir)
    for phase in phases:
        last = phase is phases[-1]
        if not last and (
            done > phase.end_epoch or (done == phase.end_epoch and (started or 0) > phase.number)
        ):
            continue  # finished before the interruption
        if phase is not phases[0]:
            with strategy.scope():
                compile_phase(model, config, phase, steps_per_epoch)
                if done < phase.first_epoch or (done == phase.first_epoch and started != phase.number):
                    save_phase_backup(model, workdir, phase.first_epoch, phase.number)
        if len(phases) > 1:
            logger.info(
                "Phase %d of %d: epochs %d-%d, %d of %d weights trainable, learning rate %g",
                phase.number,
                len(phases),
                phase.first_epoch + 1,
                phase.end_epoch,
                sum(int(np.prod(weight.shape)) for weight in model.trainable_weights),
                model.count_params(),
                phase.learning_rate,
            )
        model.fit(
            datasets["train"],
            validation_data=datasets["validation_fit"],
            initial_epoch=phase.first_epoch,
            epochs=phase.end_epoch,
            callbacks=make_callbacks(
                config, workdir, resuming or phase is not phases[0], early_stopping=last, delete_backup=last
            ),
            verbose=config.train.verbose,
        )


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
    the chief writes ``workdir`` (:mod:`aiclassify.train.cluster`). The scikit-learn baselines
    (:data:`aiclassify.classical.CLASSICAL_MODELS`) are fitted by :mod:`aiclassify.classical.run`.
    """
    if config.model.name in CLASSICAL_MODELS:
        from aiclassify.classical.run import train_classical

        return train_classical(config, Path(workdir), overwrite)
    if config.model.name == "ensemble":
        from aiclassify.train.ensemble_run import train_ensemble

        return train_ensemble(config, Path(workdir), overwrite)
    has_gpu = bool(enable_gpu_memory_growth())
    # MultiWorkerMirroredStrategy configures TensorFlow's collective ops: before any other op runs.
    strategy = make_strategy(config.train.distribute)
    dataset_root(config.data, config.train.seed)
    make_filter(config.data.filter, config.data.filter_sigma, config.data.filter_kernel_size)
    make_augmenter(config.train.augment, augment_options(config))
    check_fine_tune(config, load_pretrained(build_from_config(config), config.model.pretrained))
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
    fit_phases(model, config, datasets, workdir, strategy, resuming, steps_per_epoch)
    rewrite_history(workdir)
    best_weights = workdir / runs.BEST_WEIGHTS_FILE
    if best_weights.is_file():
        with warnings.catch_warnings():  # the best epoch may be phase 1's, saved with its optimizer
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
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
