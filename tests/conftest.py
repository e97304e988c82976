"""Shared fixtures: a tiny demo dataset and a tiny trained run, made once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def tiny_overrides(data_path: Path, **extra: object) -> list[str]:
    """``--set`` overrides for a run that trains in seconds on the tiny demo data."""
    values = {
        "data.source": "demo",
        "data.path": str(data_path),
        "data.demo_images_per_class": 24,
        "data.demo_image_size": 32,
        "data.image_size": 32,
        "model.name": "cnn_small2",
        "train.epochs": 2,
        "train.batch_size": 16,
        "train.verbose": 0,
    }
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """24 real and 24 AI-generated demo images at 32x32."""
    from aiclassify.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("data") / "demo", images_per_class=24, image_size=32)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, demo_data) -> Path:
    """A finished run directory (cnn_small2, two epochs), with its SavedModel exported."""
    from aiclassify.config import load_config
    from aiclassify.train import train

    workdir = tmp_path_factory.mktemp("runs") / "tiny"
    train(load_config(None, tiny_overrides(demo_data, name="tiny")), workdir)
    return workdir


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """The ../shared/data archives extracted once per session (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: no real data to test on")
    target = tmp_path_factory.getbasetemp() / "shared-data"
    target.mkdir(exist_ok=True)
    for name in ("cifake", "faces"):
        if not (target / f".{name}-extracted").exists():
            archive = SHARED_DATA / f"{name}.tar.gz"
            if shutil.which("tar"):  # ten times faster than tarfile on CIFAKE's 110k files
                subprocess.run(["tar", "-xzf", str(archive), "-C", str(target)], check=True)
            else:
                with tarfile.open(archive) as bundle:
                    bundle.extractall(target, filter="data")
            (target / f".{name}-extracted").touch()
    return target
