"""train.fine_tune: the backbone frozen for some epochs, then its top layers trained at a lower rate.

One run directory, one history and one epoch count across both phases; a run interrupted anywhere
resumes in its phase, with that phase's trainable layers and optimizer.
"""

from __future__ import annotations

import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_overrides

from aiclassify import runs
from aiclassify.backbones import backbone_layers
from aiclassify.config import load_config
from aiclassify.train import train, trainer
from aiclassify.train.callbacks import BACKUP_METADATA_FILE, make_callbacks

FINE_TUNE = {"train.epochs": 2, "train.fine_tune.frozen_epochs": 1, "export.saved_model": "false"}
OPTIMIZER_RESET = "Skipping variable loading for optimizer"


class KilledError(RuntimeError):
    """Stands for a kill: raised by :class:`Recorder` where a test asks."""


class Recorder(keras.callbacks.Callback):
    """Records each ``fit`` of a run (its phase, epochs, trainable layers, optimizer steps and
    weights) and raises :class:`KilledError` where asked: ``("epoch_end", epoch)`` once that epoch's
    backup is written, or ``("train_begin", phase)`` as that phase's ``fit`` starts."""

    def __init__(self, fits: list[dict], kill: tuple[str, int] | None, phase: int, snapshots: bool):
        super().__init__()
        self.fits, self.kill, self.snapshots = fits, kill, snapshots
        self.record = {"phase": phase, "epochs": [], "iterations": [], "iterations_at_end": [], "weights": {}}

    def on_train_begin(self, logs=None):
        self.record["trainable"] = [
            layer.name for layer in backbone_layers(self.model) if layer.trainable_weights
        ]
        self.record["head_trainable"] = self.model.get_layer("probability_ai").trainable
        self.fits.append(self.record)
        if self.snapshots:
            self.record["weights"]["start"] = weights_by_layer(self.model)
        if self.kill == ("train_begin", self.record["phase"]):
            raise KilledError

    def on_epoch_begin(self, epoch, logs=None):
        self.record["epochs"].append(epoch)
        self.record["iterations"].append(int(np.asarray(self.model.optimizer.iterations)))

    def on_epoch_end(self, epoch, logs=None):
        self.record["iterations_at_end"].append(int(np.asarray(self.model.optimizer.iterations)))
        if self.snapshots:
            self.record["weights"][epoch] = weights_by_layer(self.model)
        if self.kill == ("epoch_end", epoch):
            raise KilledError


def weights_by_layer(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {
        layer.name: [np.array(weight) for weight in layer.weights] for layer in model.layers if layer.weights
    }


def record_fits(monkeypatch, kill: tuple[str, int] | None = None, snapshots: bool = False) -> list[dict]:
    """Add a :class:`Recorder` after BackupAndRestore to every ``fit`` the trainer runs."""
    fits: list[dict] = []

    def with_recorder(config, workdir, resuming, *, early_stopping=True, delete_backup=True):
        callbacks = make_callbacks(
            config, workdir, resuming, early_stopping=early_stopping, delete_backup=delete_backup
        )
        phase = 1 if not delete_backup or not config.train.fine_tune.enabled else 2
        return [*callbacks, Recorder(fits, kill, phase, snapshots)]

    monkeypatch.setattr(trainer, "make_callbacks", with_recorder)
    return fits


def changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    return any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_phases_split_the_epochs_and_lower_the_rate():
    config = load_config(
        None,
        [
            "model.name=vgg16",
            "train.epochs=5",
            "train.learning_rate=0.01",
            "train.lr_schedule=cosine",
            "train.fine_tune.frozen_epochs=2",
            "train.fine_tune.unfreeze_top_layers=3",
        ],
    )
    first, second = trainer.training_phases(config)
    assert (first.first_epoch, first.end_epoch, first.learning_rate) == (0, 2, 0.01)
    assert (first.freeze, first.trainable_top_layers) == (True, 0)
    assert (second.first_epoch, second.end_epoch, second.learning_rate) == (2, 5, pytest.approx(0.001))
    assert (second.freeze, second.trainable_top_layers) == (True, 3)
    schedule = trainer.learning_rate(config, steps_per_epoch=10, phase=second)  # its own 30 steps
    assert float(schedule(0)) == pytest.approx(0.001) and float(schedule(30)) == pytest.approx(0, abs=1e-9)
    whole = load_config(None, ["model.name=vgg16", "train.epochs=3", "train.fine_tune.frozen_epochs=1"])
    assert trainer.training_phases(whole)[1].trainable_top_layers is None  # 0: the whole backbone
    (only,) = trainer.training_phases(load_config(None, ["train.epochs=4"]))
    assert (only.first_epoch, only.end_epoch, only.freeze) == (0, 4, False)


def test_a_schedule_needs_a_backbone_and_layers_it_can_unfreeze(tmp_path, demo_data):
    config = load_config(None, tiny_overrides(demo_data, **FINE_TUNE, **{"model.name": "cnn5"}))
    with pytest.raises(
        ValueError, match=r"model\.name must be one of \['densenet121', .*Received: model\.name='cnn5'"
    ):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    too_many = load_config(
        None,
        tiny_overrides(
            demo_data, **FINE_TUNE, **{"model.name": "vgg16", "train.fine_tune.unfreeze_top_layers": 14}
        ),
    )
    with pytest.raises(ValueError, match=r"exceeds the 13 layers with weights of vgg16's backbone"):
        train(too_many, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unfreezing_only_batch_norm_is_an_error():
    pytest.importorskip("keras_hub", reason="resnet18 needs keras-hub: pip install 'aiclassify[hub]'")
    from aiclassify.models import build_from_config

    config = load_config(
        None,
        [
            "model.name=resnet18",
            "data.image_size=32",
            "train.epochs=2",
            "train.fine_tune.frozen_epochs=1",
            "train.fine_tune.unfreeze_top_layers=1",  # stack3_block1_2_bn
        ],
    )
    with pytest.raises(ValueError, match=r"are BatchNormalization.*Received: unfreeze_top_layers=1"):
        trainer.check_fine_tune(config, build_from_config(config))


def test_vgg16_trains_its_head_then_its_top_layers(tmp_path, demo_data, monkeypatch):
    fits = record_fits(monkeypatch, snapshots=True)
    overrides = {**FINE_TUNE, "model.name": "vgg16", "train.fine_tune.unfreeze_top_layers": 2}
    metrics = train(load_config(None, tiny_overrides(demo_data, **overrides)), tmp_path / "run")

    frozen, unfrozen = fits
    assert (frozen["phase"], frozen["epochs"], frozen["trainable"]) == (1, [0], [])
    assert (unfrozen["phase"], unfrozen["epochs"]) == (2, [1])
    assert unfrozen["trainable"] == ["block5_conv2", "block5_conv3"]
    assert frozen["head_trainable"] and unfrozen["head_trainable"]
    start, after_frozen, after_unfrozen = (
        frozen["weights"]["start"],
        frozen["weights"][0],
        unfrozen["weights"][1],
    )
    backbone = [name for name in start if name.startswith("block")]
    assert len(backbone) == 13
    assert not any(changed(start[name], after_frozen[name]) for name in backbone)
    assert changed(start["probability_ai"], after_frozen["probability_ai"])
    assert all(changed(after_frozen[name], after_unfrozen[name]) for name in ("block5_conv2", "block5_conv3"))
    lower = [name for name in backbone if name not in ("block5_conv2", "block5_conv3")]
    assert not any(changed(after_frozen[name], after_unfrozen[name]) for name in lower)

    assert [row["epoch"] for row in runs.read_history(tmp_path / "run")] == ["0", "1"]
    assert metrics["epochs_completed"] == 2
    assert not (tmp_path / "run" / runs.BACKUP_DIR).exists()


def test_batch_norm_of_the_frozen_backbone_keeps_its_statistics(tmp_path, demo_data, monkeypatch):
    pytest.importorskip("keras_hub", reason="resnet18 needs keras-hub: pip install 'aiclassify[hub]'")
    fits = record_fits(monkeypatch, snapshots=True)
    overrides = {**FINE_TUNE, "model.name": "resnet18", "train.fine_tune.unfreeze_top_layers": 4}
    train(load_config(None, tiny_overrides(demo_data, **overrides)), tmp_path / "run")

    frozen, unfrozen = fits
    top = ["stack3_block1_1_conv", "stack3_block1_2_conv"]  # the top 4 with weights, but their BNs
    assert frozen["trainable"] == [] and unfrozen["trainable"] == top
    start, after_frozen, after_unfrozen = (
        frozen["weights"]["start"],
        frozen["weights"][0],
        unfrozen["weights"][1],
    )
    batch_norms = [name for name in start if name.endswith("_bn")]
    assert len(batch_norms) == 20
    assert not any(
        changed(start[name], after_unfrozen[name]) for name in batch_norms
    )  # moving mean, variance too
    assert all(changed(after_frozen[name], after_unfrozen[name]) for name in top)
    assert not changed(start["stack3_block0_1_conv"], after_unfrozen["stack3_block0_1_conv"])
    assert "keras_hub" in runs.read_metadata(tmp_path / "run")["versions"]  # its model.keras needs it


def test_a_run_interrupted_anywhere_resumes_in_its_phase(tmp_path, demo_data, monkeypatch, recwarn):
    """KilledError (1) as phase 1's last epoch is backed up, (2) just after phase 2's own backup is written,
    (3) in phase 2; each time the same command resumes where the run stopped."""
    overrides = {
        **FINE_TUNE,
        "train.epochs": 3,
        "model.name": "vgg16",
        "train.fine_tune.unfreeze_top_layers": 1,
    }
    config = load_config(None, tiny_overrides(demo_data, **overrides))
    workdir = tmp_path / "run"
    backup = workdir / runs.BACKUP_DIR / BACKUP_METADATA_FILE

    fits = record_fits(monkeypatch, kill=("epoch_end", 0))
    with pytest.raises(KilledError):
        train(config, workdir)
    assert [fit["phase"] for fit in fits] == [1] and json.loads(backup.read_text())["epoch"] == 1

    fits = record_fits(monkeypatch, kill=("train_begin", 2))
    with pytest.raises(KilledError):
        train(config, workdir)
    assert [(fit["phase"], fit["epochs"]) for fit in fits] == [(1, []), (2, [])]  # phase 1 only restored
    assert json.loads(backup.read_text()) == {"epoch": 1, "batch": 0, "phase": 2}

    fits = record_fits(monkeypatch, kill=("epoch_end", 1))
    with pytest.raises(KilledError):
        train(config, workdir)
    ((phase, epochs, iterations, trainable),) = [
        (fit["phase"], fit["epochs"], fit["iterations"], fit["trainable"]) for fit in fits
    ]
    assert (phase, epochs, iterations, trainable) == (2, [1], [0], ["block5_conv3"])  # a fresh optimizer
    (stopped_at,) = fits[0]["iterations_at_end"]
    assert stopped_at > 0

    fits = record_fits(monkeypatch)
    metrics = train(config, workdir)
    ((phase, epochs, iterations, trainable),) = [
        (fit["phase"], fit["epochs"], fit["iterations"], fit["trainable"]) for fit in fits
    ]
    restored = (2, [2], [stopped_at], ["block5_conv3"])  # phase 2's optimizer, where it stopped
    assert (phase, epochs, iterations, trainable) == restored
    assert [row["epoch"] for row in runs.read_history(workdir)] == ["0", "1", "2"]
    assert metrics["epochs_completed"] == 3 and not (workdir / runs.BACKUP_DIR).exists()
    assert not [w for w in recwarn if OPTIMIZER_RESET in str(w.message)]


def test_both_phases_fit_under_mixed_precision(tmp_path):
    from aiclassify.models import build_from_config

    config = load_config(
        None,
        [
            "model.name=vgg16",
            "data.image_size=32",
            "train.epochs=2",
            "train.fine_tune.frozen_epochs=1",
            "train.fine_tune.unfreeze_top_layers=1",
            "train.verbose=0",
        ],
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(8, dtype="float32") % 2)).batch(4)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_from_config(config)
        trainer.compile_phase(model, config, trainer.training_phases(config)[0], steps_per_epoch=2)
        runs.prepare_workdir(config, tmp_path / "run")
        with warnings.catch_warnings():
            for noise in trainer.KERAS_DATASET_NOISE:
                warnings.filterwarnings("ignore", message=noise, category=UserWarning)
            trainer.fit_phases(
                model,
                config,
                {"train": dataset, "validation_fit": dataset},
                tmp_path / "run",
                tf.distribute.get_strategy(),
                resuming=False,
                steps_per_epoch=2,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # phase 2's, recompiled
    assert model.get_layer("block5_conv3").compute_dtype == "float16"
    assert model.get_layer("probability_ai").compute_dtype == "float32"
    assert [layer.name for layer in backbone_layers(model) if layer.trainable_weights] == ["block5_conv3"]
    assert [row["epoch"] for row in runs.read_history(tmp_path / "run")] == ["0", "1"]
