"""End-to-end training runs: the run directory, precision, refusal to clobber, CLI errors."""

from __future__ import annotations

import csv
import json
import logging

import keras
import numpy as np
import pytest
import yaml
from conftest import tiny_overrides

from aiclassify import runs
from aiclassify.config import ConfigError, load_config
from aiclassify.train import cli, train
from aiclassify.train.callbacks import make_callbacks
from aiclassify.train.devices import choose_precision
from aiclassify.train.trainer import compile_model, learning_rate


def test_run_directory_is_complete(tiny_run):
    for name in ("config.yaml", "history.csv", "metrics.json", "model.keras", "metadata.json", "saved_model"):
        assert (tiny_run / name).exists(), name
    assert not (tiny_run / runs.BACKUP_DIR).exists()
    assert not [p for p in tiny_run.iterdir() if p.name.startswith(".")]


def test_saved_config_is_fully_resolved(tiny_run):
    saved = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert saved["model"]["name"] == "cnn_small2"
    assert saved["train"]["learning_rate"] == 0.001  # a default, written out too
    assert set(saved) == {"name", "data", "model", "train", "classical", "export"}


def test_history_has_one_row_per_epoch(tiny_run):
    with (tiny_run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])


def test_metrics_and_metadata(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert set(metrics[split]) >= {"loss", "accuracy", "precision", "recall", "f1", "roc_auc"}
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
    assert metrics["train_seconds"] > 0 and metrics["epochs_completed"] == 2
    metadata = runs.read_metadata(tiny_run)
    assert metadata["classes"] == {"0": "real", "1": "ai-generated"}
    assert metadata["class_folders"] == {"0": "real", "1": "fake"}
    assert metadata["image_size"] == 32 and metadata["threshold"] == 0.5
    assert metadata["precision"] == "float32"
    assert set(metadata["versions"]) >= {"tensorflow", "keras", "numpy", "aiclassify"}
    counts = metadata["dataset"]["counts"]
    assert sum(c["real"] + c["ai-generated"] for c in counts.values()) == 48


def test_precision_falls_back_to_float32_without_gpu(caplog):
    with caplog.at_level(logging.WARNING, logger="aiclassify.train"):
        assert choose_precision("mixed_float16", has_gpu=False) == "float32"
    assert "No GPU found" in caplog.text
    assert choose_precision("mixed_float16", has_gpu=True) == "mixed_float16"


@pytest.mark.parametrize(
    ("key", "value", "nearest"),
    [("train.precision", "mixed_float", "mixed_float16"), ("train.distribute", "mirror", "mirrored")],
)
def test_unknown_precision_or_strategy_fails_when_the_config_loads(key, value, nearest):
    with pytest.raises(ConfigError, match=f"Did you mean '{nearest}'"):
        load_config(None, [f"{key}={value}"])


def test_mixed_precision_config_trains_on_cpu(tmp_path, demo_data):
    config = load_config(
        None, tiny_overrides(demo_data, **{"train.precision": "mixed_float16", "train.epochs": 1})
    )
    train(config, tmp_path / "run")
    assert runs.read_metadata(tmp_path / "run")["precision"] == "float32"


def test_finished_run_is_not_overwritten_silently(tiny_run):
    config = load_config(tiny_run / "config.yaml")
    with pytest.raises(runs.RunDirectoryError, match="--overwrite"):
        runs.prepare_workdir(config, tiny_run)


def test_interrupted_run_resumes_only_with_its_own_config(tmp_path):
    config = load_config(None, ["train.epochs=3"])
    runs.prepare_workdir(config, tmp_path / "run")
    (tmp_path / "run" / runs.BACKUP_DIR).mkdir()
    (tmp_path / "run" / runs.BACKUP_DIR / "training_metadata.json").write_text('{"epoch": 1}')
    assert runs.prepare_workdir(config, tmp_path / "run") is True
    with pytest.raises(runs.RunDirectoryError, match="different configuration"):
        runs.prepare_workdir(load_config(None, ["train.epochs=4"]), tmp_path / "run")


def test_a_non_chief_worker_copies_what_resuming_reads_and_nothing_else(tmp_path):
    import tensorflow as tf

    from aiclassify.train.cluster import worker_workdir

    config = load_config(None, ["train.epochs=3"])
    runs.prepare_workdir(config, tmp_path / "run")
    for name in (runs.BACKUP_DIR, "checkpoints", "cache"):
        (tmp_path / "run" / name).mkdir()
    (tmp_path / "run" / runs.BACKUP_DIR / "training_metadata.json").write_text('{"epoch": 2}')
    (tmp_path / "run" / runs.HISTORY_FILE).write_text("epoch,loss\n0,0.7\n1,0.6\n")
    runs.copy_resume_state(tmp_path / "run", tmp_path / "copy")
    copied = sorted(path.name for path in (tmp_path / "copy").iterdir())
    assert copied == [runs.BACKUP_DIR, "checkpoints", runs.CONFIG_FILE, runs.HISTORY_FILE]
    assert runs.prepare_workdir(config, tmp_path / "copy") is True
    assert runs.backup_epoch(tmp_path / "copy") == 2
    with worker_workdir(tf.distribute.get_strategy(), tmp_path / "run", overwrite=False) as workdir:
        assert workdir == tmp_path / "run"  # outside multi-worker training, this process is the chief


def test_train_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  nme: cnn5\n")
    assert cli.main(["--config", str(bad), "--workdir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "model.nme" in error and "Traceback" not in error


def test_train_cli_says_how_to_get_missing_kaggle_data(tmp_path, capsys):
    argv = [
        "--config",
        "faces.yaml",
        "--set",
        f"data.path={tmp_path}/nowhere",
        "--workdir",
        str(tmp_path / "r"),
    ]
    assert cli.main(argv) == 2
    assert "aiclassify data download faces" in capsys.readouterr().err


def test_train_cli_runs_with_overrides(tmp_path, demo_data):
    argv = ["--config", "demo.yaml", "--workdir", str(tmp_path / "run")]
    argv += [
        arg for override in tiny_overrides(demo_data, **{"train.epochs": 1}) for arg in ("--set", override)
    ]
    assert cli.main(argv) == 0
    assert runs.read_metadata(tmp_path / "run")["name"] == "demo"


def test_metadata_carries_the_measured_metrics(tiny_run):
    metadata = runs.read_metadata(tiny_run)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metadata["metrics"]["test"] == metrics["test"]
    assert metadata["train_seconds"] == metrics["train_seconds"]


def test_cosine_schedule_decays_to_zero_over_every_training_step():
    config = load_config(None, ["train.lr_schedule=cosine", "train.epochs=3", "train.learning_rate=0.01"])
    schedule = learning_rate(config, steps_per_epoch=10)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(15)) == pytest.approx(0.005, rel=1e-4)
    assert float(schedule(30)) == pytest.approx(0.0, abs=1e-9)
    assert learning_rate(load_config(None, []), steps_per_epoch=10) == pytest.approx(0.001)


def test_unknown_lr_schedule_fails_when_the_config_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"'train.lr_schedule' must be one of \['constant', 'cosine'\]"):
        load_config(None, ["train.lr_schedule=step"])


def test_cosine_run_trains_saves_and_reloads(tmp_path, demo_data):
    config = load_config(
        None, tiny_overrides(demo_data, **{"train.lr_schedule": "cosine", "train.epochs": 1})
    )
    train(config, tmp_path / "run")
    model = keras.models.load_model(tmp_path / "run" / runs.MODEL_FILE)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed over the one epoch


def test_backup_is_written_after_the_epoch_row_checkpoint_and_timing(tmp_path):
    """A kill between two callbacks must repeat an epoch on resume, never lose its history row."""
    config = load_config(None, ["train.tensorboard=true"])
    callbacks = make_callbacks(config, tmp_path, resuming=False)
    assert isinstance(callbacks[-1], keras.callbacks.BackupAndRestore)
    kinds = [type(callback) for callback in callbacks[:-1]]
    assert {
        keras.callbacks.CSVLogger,
        keras.callbacks.ModelCheckpoint,
        keras.callbacks.LambdaCallback,
    } <= set(kinds)


ROBUST = {
    "train.degrade.blur_prob": 0.5,
    "train.degrade.blur_sigma_max": 1.5,
    "train.degrade.jpeg_prob": 0.5,
    "train.degrade.jpeg_quality_min": 50,
    "train.degrade.downscale_prob": 0.3,
    "train.degrade.crop_prob": 0.3,
    "train.validation_degraded": "true",
    "data.train_crop": "true",
    "data.image_size": 24,  # the 32x32 demo images are cropped to 24x24 in training, resized elsewhere
}


def test_a_run_with_the_robust_recipe_trains_saves_and_exports(tmp_path, demo_data):
    from aiclassify.predict import Predictor

    config = load_config(None, tiny_overrides(demo_data, **ROBUST))
    assert config.train.degrade.jpeg_prob == 0.5 and config.data.train_crop
    metrics = train(config, tmp_path / "run")
    assert metrics["epochs_completed"] == 2
    for name in ("model.keras", "saved_model", "metadata.json", "metrics.json", "history.csv"):
        assert (tmp_path / "run" / name).exists(), name
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (
        saved["train"]["degrade"]["blur_sigma_max"] == 1.5 and saved["train"]["validation_degraded"] is True
    )
    assert load_config(tmp_path / "run" / "config.yaml") == config
    predictor = Predictor.load(tmp_path / "run")
    assert predictor.image_size == 24
    images = [path.read_bytes() for path in sorted(demo_data.rglob("*.jpg"))[:3]]
    assert len(predictor.predict(images)) == 3


def test_fit_monitors_clean_validation_plus_fixed_degraded_copies(tmp_path, demo_data):
    import numpy as np

    from aiclassify.train.trainer import prepare_data

    config = load_config(None, tiny_overrides(demo_data, **ROBUST, **{"data.cache": "none"}))
    splits, datasets, _ = prepare_data(config, tmp_path)
    clean = np.concatenate([x.numpy() for x, _ in datasets["validation"]])
    monitored = [np.concatenate([x.numpy() for x, _ in datasets["validation_fit"]]) for _ in range(2)]
    assert len(clean) == len(splits.splits["validation"]) and len(monitored[0]) == 2 * len(clean)
    np.testing.assert_array_equal(monitored[0][0::2], clean)  # metrics.json's validation: these
    np.testing.assert_array_equal(monitored[0], monitored[1])  # the same copies every epoch
    changed = np.any(monitored[0][1::2] != clean, axis=(1, 2, 3))
    assert changed.mean() > 0.8  # every probability raised to at least 0.5
    train_batch = next(iter(datasets["train"]))[0]
    assert train_batch.shape[1:] == (24, 24, 3)

    plain = load_config(None, tiny_overrides(demo_data, **{"data.cache": "none"}))
    _, plain_datasets, _ = prepare_data(plain, tmp_path / "plain")
    assert plain_datasets["validation_fit"] is plain_datasets["validation"]


def test_a_run_from_pretrained_weights_starts_from_them(tiny_run):
    config = load_config(
        None,
        ["model.name=cnn_small2", "data.image_size=32", f"model.pretrained={tiny_run / runs.MODEL_FILE}"],
    )
    started = compile_model(config)
    finished = keras.models.load_model(tiny_run / runs.MODEL_FILE)
    for expected, actual in zip(finished.weights, started.weights, strict=True):
        assert np.array_equal(np.asarray(actual), np.asarray(expected)), actual.path
