"""The training callbacks: stock Keras callbacks in an order that survives a kill, and the run's clock."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import keras

from aiclassify import runs
from aiclassify.config import Config

BACKUP_WEIGHTS_FILE = "latest.weights.h5"  # BackupAndRestore's files in runs.BACKUP_DIR
BACKUP_METADATA_FILE = "training_metadata.json"


def make_callbacks(
    config: Config, workdir: Path, resuming: bool, *, early_stopping: bool = True, delete_backup: bool = True
) -> list[keras.callbacks.Callback]:
    """The stock callbacks, BackupAndRestore last.

    Keras runs callbacks in list order, so an epoch's history row, timing and best checkpoint are
    written before its backup: a run killed in between repeats that epoch on resume (the
    duplicate row is dropped by :func:`rewrite_history`) instead of losing its row. ``resuming``
    (history.csv has rows) starts the best checkpoint at the best logged value. A training phase
    before the last (:mod:`aiclassify.train.trainer`) has no early stopping and keeps its backup.
    """
    train = config.train
    best_path = workdir / runs.BEST_WEIGHTS_FILE
    best_path.parent.mkdir(parents=True, exist_ok=True)
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.ModelCheckpoint(
            str(best_path),
            monitor=train.monitor,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_logged_value(workdir, train.monitor) if resuming else None,
        ),
    ]
    if early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=train.monitor, patience=train.early_stopping_patience, restore_best_weights=True
            )
        )
    callbacks += [
        keras.callbacks.CSVLogger(str(workdir / runs.HISTORY_FILE), append=True),
        elapsed_time_callback(workdir),
    ]
    if train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(workdir / "tensorboard")))
    callbacks.append(
        keras.callbacks.BackupAndRestore(
            str(workdir / runs.BACKUP_DIR), double_checkpoint=True, delete_checkpoint=delete_backup
        )
    )
    return callbacks


def save_phase_backup(model: keras.Model, workdir: Path, epoch: int, phase: int) -> None:
    """Write the backup that training ``phase``, starting at ``epoch``, resumes from: ``model`` as it is.

    It is BackupAndRestore's own backup (the weights file, which holds the optimizer's state too,
    and the metadata), so a run killed before the phase's first epoch ends resumes at its start
    with its trainable layers and optimizer, not the previous phase's. The metadata's ``phase``
    marks it (BackupAndRestore reads only ``epoch``, and the mark goes when it next saves). The
    previous backup's copies (``.bkp``) are removed: they hold the previous phase's optimizer.
    Call it inside the strategy scope, with ``model`` compiled for the phase.
    """
    backup = Path(workdir) / runs.BACKUP_DIR
    backup.mkdir(parents=True, exist_ok=True)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.save_weights(str(backup / BACKUP_WEIGHTS_FILE), overwrite=True)
    for name in (BACKUP_WEIGHTS_FILE, BACKUP_METADATA_FILE):
        (backup / f"{name}.bkp").unlink(missing_ok=True)
    runs.write_json(backup / BACKUP_METADATA_FILE, {"epoch": epoch, "batch": 0, "phase": phase})


def backup_phase(workdir: Path) -> int | None:
    """The phase whose start :func:`save_phase_backup` left as the backup, or None (no such backup)."""
    if not runs.is_resumable(workdir):
        return None
    return runs.read_json(Path(workdir) / runs.BACKUP_DIR / BACKUP_METADATA_FILE).get("phase")


def best_logged_value(workdir: Path, monitor: str) -> float | None:
    """The best ``monitor`` value in history.csv, so a resumed run keeps the true best checkpoint."""
    values = [float(row[monitor]) for row in runs.read_history(workdir) if row.get(monitor)]
    if not values:
        return None
    return max(values) if "acc" in monitor or "auc" in monitor else min(values)


def rewrite_history(workdir: Path) -> None:
    """Drop duplicate epoch rows that an interrupted and resumed run can leave."""
    rows = runs.read_history(workdir)
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


def best_epoch(workdir: Path, monitor: str) -> int | None:
    """The 1-based epoch with the best ``monitor`` value in history.csv."""
    best = best_logged_value(workdir, monitor)
    for row in runs.read_history(workdir):
        if row.get(monitor) and float(row[monitor]) == best:
            return int(row["epoch"]) + 1
    return None
