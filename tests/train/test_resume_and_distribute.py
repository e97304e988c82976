"""A run killed mid-training resumes with the same command; mirrored training on two CPU devices."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, tiny_overrides

pytestmark = pytest.mark.slow

TRAIN_COMMAND = [sys.executable, "-m", "aiclassify.train"]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def wait_for_epoch(backup: Path, epoch: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if backup.is_file() and json.loads(backup.read_text() or "{}").get("epoch", 0) >= epoch:
            return
        if process.poll() is not None:
            pytest.fail(f"training ended before epoch {epoch}:\n{process.stdout.read()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no backup of epoch {epoch} within {timeout} s")


def test_killed_run_resumes_where_it_stopped(tmp_path, demo_data):
    workdir = tmp_path / "run"
    overrides = tiny_overrides(
        demo_data,
        **{
            "model.name": "cnn5",
            "data.image_size": 64,
            "train.epochs": 8,
            "train.early_stopping_patience": 99,
            "train.verbose": 2,
        },
    )
    command = [*TRAIN_COMMAND, "--config", "demo.yaml", "--workdir", str(workdir)]
    command += [arg for override in overrides for arg in ("--set", override)]
    first = subprocess.Popen(
        command, cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wait_for_epoch(workdir / "backup" / "training_metadata.json", 2, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert not (workdir / "metadata.json").exists(), "the run finished before it could be killed"
    killed_at = json.loads((workdir / "backup" / "training_metadata.json").read_text())["epoch"]

    second = subprocess.run(
        command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stderr
    assert "Resuming run" in second.stderr
    assert f"Epoch {killed_at + 1}/8" in second.stdout and "Epoch 1/8" not in second.stdout
    with (workdir / "history.csv").open() as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(8))
    assert json.loads((workdir / "metrics.json").read_text())["epochs_completed"] == 8
    assert not (workdir / "backup").exists()


MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from aiclassify.config import load_config
from aiclassify.logs import setup_logging
from aiclassify.train import train
setup_logging()
train(load_config(None, sys.argv[2:]), sys.argv[1])
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, demo_data):
    overrides = tiny_overrides(demo_data, **{"train.distribute": "mirrored", "train.epochs": 1})
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path / "run"), *overrides],
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "on 2 replica(s)" in result.stderr
    assert (tmp_path / "run" / "saved_model" / "saved_model.pb").is_file()
