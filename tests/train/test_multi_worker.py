"""``train.distribute: multi_worker`` for real: two worker processes on 127.0.0.1, CPU only.

Both workers get the same command and ``TF_CONFIG`` cluster; worker 0 is the chief. With
``model.dropout: 0`` and no BatchNorm (cnn_small2), two workers compute the same steps as one
process: the same global batches, each replica averaging its half and the gradients averaged
across replicas; only the order of float additions differs, so the logged metrics agree to about
1e-7 (measured). ``ABS_TOLERANCE`` is 1e-4: a thousand times that, and far below what a wrong
split costs (measured: with sharding OFF, each worker reading every batch, the first epoch's loss
moved by 2e-2). Dropout would draw different masks per replica, so it is off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, free_port, tiny_overrides

from aiclassify import runs

pytestmark = pytest.mark.slow

WORKERS = 2
ABS_TOLERANCE = 1e-4
RUN_TIMEOUT_S = 240  # one worker's whole run, on 2 busy cores
TRAIN_COMMAND = [sys.executable, "-m", "aiclassify.train", "--config", "demo.yaml"]


@pytest.fixture(scope="module")
def cluster_data(tmp_path_factory) -> Path:
    """The tiny demo dataset written for ``train.seed`` (42), as training would write it.

    ``demo_data`` is written with seed 0, so each worker would rewrite it on start, racing the
    other worker's reads.
    """
    from aiclassify.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("cluster-data") / "demo", 24, 32, seed=42)


def free_ports(count: int) -> list[int]:
    """``count`` different free ports on 127.0.0.1."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def worker_environment(ports: list[int], index: int, scratch: Path) -> dict[str, str]:
    """The environment of worker ``index`` of a cluster on 127.0.0.1 ``ports``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return {
        **os.environ,
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        "CUDA_VISIBLE_DEVICES": "-1",  # every worker on one host would otherwise claim the same GPU
        "TMPDIR": str(scratch),  # where the non-chief worker keeps its copy of the run
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    }


def start_workers(
    command: list[str] | list[list[str]], ports: list[int], scratch: Path, logs: Path
) -> list[subprocess.Popen]:
    """Every worker of the cluster, with the same command (or one each); output in ``logs/worker<i>.log``."""
    commands = command if isinstance(command[0], list) else [command] * len(ports)
    scratch.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    workers = []
    for index in range(len(ports)):
        with (logs / f"worker{index}.log").open("w") as log:
            workers.append(
                subprocess.Popen(
                    commands[index],
                    cwd=REPO,
                    env=worker_environment(ports, index, scratch),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return workers


def stop(workers: list[subprocess.Popen]) -> None:
    """Kill every worker still running."""
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.wait(30)


def wait_for(workers: list[subprocess.Popen], logs: Path, timeout_s: float = RUN_TIMEOUT_S) -> list[str]:
    """Wait for every worker to exit 0 and return their outputs; fail (killing them all) otherwise."""
    deadline = time.monotonic() + timeout_s
    try:
        for worker in workers:
            worker.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        stop(workers)
        pytest.fail(f"the workers did not finish within {timeout_s} s (a hang):\n{tails(logs)}")
    outputs = [(logs / f"worker{index}.log").read_text() for index in range(len(workers))]
    codes = [worker.returncode for worker in workers]
    assert codes == [0] * len(workers), f"exit codes {codes}:\n{tails(logs)}"
    return outputs


def tails(logs: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(logs.glob("*.log")))


def command(workdir: Path, overrides: list[str]) -> list[str]:
    sets = [arg for item in overrides for arg in ("--set", item)]
    return [*TRAIN_COMMAND, "--workdir", str(workdir), *sets]


def exact_overrides(data: Path, **extra: object) -> list[str]:
    return tiny_overrides(
        data, **{"model.dropout": 0.0, "train.verbose": 2, "train.distribute": "multi_worker", **extra}
    )


def test_two_workers_train_like_one_process_and_only_the_chief_writes(tmp_path, cluster_data):
    from aiclassify.config import load_config
    from aiclassify.train import train

    workdir, scratch, logs = tmp_path / "run", tmp_path / "scratch", tmp_path / "logs"
    ports = free_ports(WORKERS)
    workers = start_workers(command(workdir, exact_overrides(cluster_data)), ports, scratch, logs)
    try:
        single = tmp_path / "single"
        train(load_config("demo.yaml", exact_overrides(cluster_data, **{"train.distribute": "none"})), single)
        chief, other = wait_for(workers, logs)
    finally:
        stop(workers)

    assert "on 2 replica(s)" in chief and f"Run directory: {workdir}\n" in chief
    assert f"is not the chief: its copy of the run goes to {scratch}" in other
    assert f"Run directory: {scratch}" in other and str(workdir) + "\n" not in other
    assert not list(scratch.iterdir()), "the non-chief worker left its copy of the run behind"
    assert "2/2 - " in chief  # 32 training images in global batches of 16: two steps an epoch
    assert sorted(path.name for path in workdir.iterdir()) == sorted(path.name for path in single.iterdir())
    for multi_row, single_row in zip(runs.read_history(workdir), runs.read_history(single), strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(multi_row[key]) == pytest.approx(float(single_row[key]), abs=ABS_TOLERANCE), key
    multi_metrics, single_metrics = (runs.read_json(path / runs.METRICS_FILE) for path in (workdir, single))
    for split in ("validation", "test"):
        assert multi_metrics[split] == pytest.approx(single_metrics[split], abs=ABS_TOLERANCE)
    assert (workdir / runs.SAVED_MODEL_DIR / "saved_model.pb").is_file()


def wait_for_backup(backup: Path, epoch: int, workers: list[subprocess.Popen], logs: Path) -> int:
    """Wait for the chief's backup to hold ``epoch`` epochs; return the epoch it holds."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        if backup.is_file():
            with_epoch = json.loads(backup.read_text() or "{}").get("epoch", 0)
            if with_epoch >= epoch:
                return with_epoch
        if any(worker.poll() is not None for worker in workers):
            stop(workers)
            pytest.fail(f"a worker ended before epoch {epoch} was backed up:\n{tails(logs)}")
        time.sleep(0.05)
    stop(workers)
    pytest.fail(f"no backup of epoch {epoch} within {RUN_TIMEOUT_S} s:\n{tails(logs)}")


def wait_for_text(log: Path, text: str, timeout_s: float) -> None:
    """Wait for ``text`` to appear in ``log``."""
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text():
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in {log.name} within {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_killed_worker_and_restarted_cluster_resume_from_the_backup(tmp_path, cluster_data):
    workdir, scratch = tmp_path / "run", tmp_path / "scratch"
    overrides = exact_overrides(
        cluster_data, **{"train.early_stopping_patience": 99, "export.saved_model": False}
    )
    ports = free_ports(WORKERS)
    first = start_workers(command(workdir, overrides), ports, scratch, tmp_path / "first")
    try:
        backup = workdir / runs.BACKUP_DIR / "training_metadata.json"
        killed_at = wait_for_backup(backup, 1, first, tmp_path / "first")
        first[1].send_signal(signal.SIGKILL)
        # The chief's next collective fails within seconds, but its process may then hang on exit:
        # the restart procedure stops every worker, then starts them all again.
        wait_for_text(tmp_path / "first" / "worker0.log", "UnavailableError", timeout_s=60)
    finally:
        stop(first)
    assert not (workdir / runs.METADATA_FILE).exists(), "the run finished before a worker was killed"
    assert runs.backup_epoch(workdir) == killed_at == 1

    # A worker that cannot see the run directory (no shared filesystem) would start over: refused.
    blind = [command(workdir, overrides), command(tmp_path / "elsewhere", overrides)]
    refused = start_workers(blind, ports, scratch, tmp_path / "refused")
    try:
        for worker in refused:
            worker.wait(RUN_TIMEOUT_S)
    finally:
        stop(refused)
    assert [worker.returncode for worker in refused] == [2, 2], tails(tmp_path / "refused")
    assert "workers disagree on the epoch to start from" in (tmp_path / "refused" / "worker0.log").read_text()
    assert runs.backup_epoch(workdir) == killed_at and not (tmp_path / "elsewhere").exists()

    second = start_workers(command(workdir, overrides), ports, scratch, tmp_path / "second")
    try:
        outputs = wait_for(second, tmp_path / "second")
    finally:
        stop(second)
    for output in outputs:
        assert "Resuming run" in output
        assert "Epoch 2/2" in output and "Epoch 1/2" not in output
    assert [int(row["epoch"]) for row in runs.read_history(workdir)] == [0, 1]
    assert runs.read_json(workdir / runs.TIMING_FILE)["epochs_completed"] == 2
    assert runs.read_json(workdir / runs.METRICS_FILE)["epochs_completed"] == 2
    assert runs.is_resumable(workdir) is False and (workdir / runs.METADATA_FILE).is_file()
