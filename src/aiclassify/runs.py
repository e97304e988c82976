"""The run directory: its files, who writes each, and how a run is started or resumed.

Each artefact has one writer; every other module only reads it.

- Training (:mod:`aiclassify.train`) writes ``config.yaml`` (fully resolved), ``history.csv``,
  ``timing.json``, ``checkpoints/``, ``model.keras``, ``metrics.json``, ``saved_model/`` and, last,
  ``metadata.json`` (its presence marks a finished run); while training, ``backup/`` holds the
  state that lets the same command resume an interrupted run. A classical (scikit-learn) run
  (:mod:`aiclassify.classical`) writes the same files except ``history.csv``, ``timing.json``,
  ``checkpoints/`` and ``backup/`` (a fit has no epochs; its time is in ``metrics.json``). In
  multi-worker training only the chief writes here; the other workers write their identical
  copies into temporary directories (:mod:`aiclassify.train.cluster`).
- Evaluation (:mod:`aiclassify.evaluate`) writes ``report.json``, ``report.md``, ``figures/`` and
  ``calibration.json`` (temperature, operating points and inconclusive band fitted on validation).
  It never rewrites training's files.
- The predictor (:mod:`aiclassify.predict`) reads ``metadata.json``, ``calibration.json`` and
  ``saved_model/``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from aiclassify.config import Config, from_dict, save_config, to_dict

CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
METADATA_FILE = "metadata.json"
MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
BACKUP_DIR = "backup"
BEST_WEIGHTS_FILE = "checkpoints/best.weights.h5"
TIMING_FILE = "timing.json"
CALIBRATION_FILE = "calibration.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FIGURES_DIR = "figures"


class RunDirectoryError(RuntimeError):
    """The run directory is in a state that the requested run cannot start from."""


def is_resumable(workdir: Path) -> bool:
    """Whether an interrupted run left a backup to resume from."""
    return (Path(workdir) / BACKUP_DIR / "training_metadata.json").is_file()


def backup_epoch(workdir: Path) -> int:
    """The number of epochs an interrupted run's backup holds (0 when there is none)."""
    if not is_resumable(workdir):
        return 0
    return int(read_json(Path(workdir) / BACKUP_DIR / "training_metadata.json")["epoch"])


def copy_resume_state(workdir: Path, destination: Path) -> None:
    """Copy what :func:`prepare_workdir` and a resumed run read from ``workdir`` into ``destination``."""
    workdir, destination = Path(workdir), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, HISTORY_FILE, TIMING_FILE, METADATA_FILE):
        if (workdir / name).is_file():
            shutil.copy2(workdir / name, destination / name)
    for name in (BACKUP_DIR, str(Path(BEST_WEIGHTS_FILE).parent)):
        if (workdir / name).is_dir():
            shutil.copytree(workdir / name, destination / name)


def prepare_workdir(config: Config, workdir: Path, overwrite: bool = False) -> bool:
    """Make ``workdir`` ready for ``config``; return True when resuming an interrupted run.

    A finished run is never overwritten silently, and an interrupted run resumes only with the
    configuration it started with.
    """
    workdir = Path(workdir)
    if overwrite and workdir.exists():
        shutil.rmtree(workdir)
    saved_config = workdir / CONFIG_FILE
    if is_resumable(workdir):
        saved = yaml.safe_load(saved_config.read_text()) if saved_config.is_file() else None
        if saved != to_dict(config):
            raise RunDirectoryError(
                f"{workdir} holds an interrupted run with a different configuration. "
                "Resume it with the same config, or pass --overwrite to start again."
            )
        return True
    if (workdir / METADATA_FILE).is_file():
        raise RunDirectoryError(
            f"{workdir} already holds a finished run. Pass --overwrite to replace it, "
            "or choose another --workdir."
        )
    if workdir.exists():
        shutil.rmtree(workdir)  # started but never reached a backup: nothing worth keeping
    workdir.mkdir(parents=True)
    save_config(config, saved_config)
    return False


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (to a temporary file, then renamed)."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(temporary, path)


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def read_metadata(run_dir: Path) -> dict[str, Any]:
    """The metadata of a finished run, with a clear error when the folder is not one."""
    path = Path(run_dir) / METADATA_FILE
    if not path.is_file():
        raise RunDirectoryError(f"{run_dir} is not a finished run: {METADATA_FILE} is missing.")
    return read_json(path)


def read_config(run_dir: Path) -> Config:
    """The resolved configuration a run was trained with."""
    path = Path(run_dir) / CONFIG_FILE
    return from_dict(Config, yaml.safe_load(path.read_text()) or {}, str(path))


def read_history(run_dir: Path) -> list[dict[str, str]]:
    """Rows of history.csv, the last one kept where an epoch was logged twice across a resume."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = {row["epoch"]: row for row in csv.DictReader(handle)}
    return sorted(rows.values(), key=lambda row: int(row["epoch"]))
