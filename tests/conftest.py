"""Shared fixtures and helpers, defined once for every test folder.

Fixtures: a tiny demo dataset and ONE tiny trained run made once per session, the copies of that run
the serving tests load (calibrated, legacy-calibrated, a bare SavedModel), and the real data in
../shared. Helpers (imported as ``from conftest import ...``): repository paths, ``tiny_overrides``,
a free loopback port, the Flask API in a thread, server processes started and stopped, and the
Streamlit page run through AppTest. Plain input builders live in builders.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
APP = REPO / "app" / "streamlit_app.py"
APP_TIMEOUT_S = 60  # one script run of the Streamlit page, including the requests it makes to the API

# What the calibrated copies of the tiny run carry (as an evaluated run would).
CALIBRATION = {"temperature": 2.0, "fitted_on": "validation"}
OPERATING_POINTS = [
    {"name": "fpr_1pct", "target_fpr": 0.01, "threshold": 0.9, "fpr": 0.01, "tpr": 0.5},
    {"name": "fpr_5pct", "target_fpr": 0.05, "threshold": 0.7, "fpr": 0.05, "tpr": 0.7},
    {"name": "balanced", "target_fpr": None, "threshold": 0.3, "fpr": 0.1, "tpr": 0.9},
]


def assert_runs_without_tensorflow(code: str, cwd: Path, *args: str) -> None:
    """Run Python ``code`` in a fresh interpreter in ``cwd`` and check it never imported TensorFlow."""
    import sys

    check = f"{code}\nimport sys\nassert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    result = subprocess.run(
        [sys.executable, "-c", check, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def load_script(name: str) -> Any:
    """``scripts/<name>.py`` as a module (for its ``parse_args`` and ``main``)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


# --- data and runs, once per session -------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """24 real and 24 AI-generated demo images at 32x32."""
    from aiclassify.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("data") / "demo", images_per_class=24, image_size=32)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, demo_data) -> Path:
    """The one tiny trained run: cnn_small2, two epochs on ``demo_data``, named ``run``, SavedModel
    exported. Shared by every test: copy it (shutil.copytree) before writing into it."""
    from aiclassify.config import load_config
    from aiclassify.train import train

    workdir = tmp_path_factory.mktemp("runs") / "run"
    train(load_config(None, tiny_overrides(demo_data)), workdir)
    return workdir


def _renamed_copy(run: Path, destination: Path) -> Path:
    """A copy of ``run`` whose metadata names the run like ``destination``'s folder."""
    shutil.copytree(run, destination)
    metadata_path = destination / "metadata.json"
    metadata_path.write_text(json.dumps({**json.loads(metadata_path.read_text()), "name": destination.name}))
    return destination


@pytest.fixture(scope="session")
def calibrated_run(tmp_path_factory, tiny_run) -> Path:
    """A copy of :func:`tiny_run` evaluated: its calibration.json has a temperature and operating points."""
    destination = _renamed_copy(tiny_run, tmp_path_factory.mktemp("runs") / "calibrated")
    calibration = {**CALIBRATION, "operating_points": OPERATING_POINTS}
    (destination / "calibration.json").write_text(json.dumps(calibration))
    return destination


@pytest.fixture(scope="session")
def legacy_calibrated_run(tmp_path_factory, tiny_run) -> Path:
    """A copy of :func:`tiny_run` evaluated by an older evaluate, which wrote into metadata.json."""
    destination = _renamed_copy(tiny_run, tmp_path_factory.mktemp("runs") / "legacy")
    metadata_path = destination / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata.update(calibration=CALIBRATION, operating_points=OPERATING_POINTS)
    metadata_path.write_text(json.dumps(metadata))
    return destination


@pytest.fixture(scope="session")
def bare_saved_model(tmp_path_factory, tiny_run) -> Path:
    """:func:`tiny_run`'s SavedModel copied out of its run directory: no metadata, no model.keras."""
    destination = tmp_path_factory.mktemp("bare") / "saved_model"
    shutil.copytree(tiny_run / "saved_model", destination)
    return destination


@pytest.fixture(scope="session")
def api_models(tiny_run, calibrated_run) -> dict[str, str]:
    """The two models the API tests serve: ``faces`` (plain run) and ``general`` (calibrated, with
    stored operating points, fpr_1pct among them)."""
    return {"faces": str(tiny_run), "general": str(calibrated_run)}


@pytest.fixture(scope="session")
def encoded_images() -> list[bytes]:
    """Five noise images, one each as JPEG, PNG, WEBP, BMP and GIF."""
    from builders import noise_image

    formats = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
    return [noise_image(fmt, size=(48, 40), seed=i) for i, fmt in enumerate(formats)]


@pytest.fixture(scope="module")
def fake_app():
    """The API in-process on two fake predictors (builders.FakePredictor: no model, instant): ``faces``
    (uncalibrated) and ``general`` (calibrated, with :data:`OPERATING_POINTS`), and a
    builders.FakeDetector finding two faces in each image of 64 px a side or more; 1 MB upload limit."""
    from builders import FakeDetector, FakePredictor

    from aiclassify.serving.app import create_app

    calibration = {**CALIBRATION, "operating_points": OPERATING_POINTS}
    app = create_app(
        {"background_loading": False, "max_batch_wait_ms": 0, "max_upload_mb": 1},
        predictors={"faces": FakePredictor(), "general": FakePredictor(calibration=calibration)},
        face_detector=FakeDetector(),
    )
    yield app
    app.extensions["aiclassify"].registry.close()


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


@pytest.fixture(scope="session")
def group_photo(shared_data) -> bytes:
    """A 1200x500 JPEG of three real 140k face photos pasted left to right
    (:func:`builders.group_photo`, at :data:`builders.GROUP_PLACES`)."""
    from builders import group_photo as make_group_photo

    return make_group_photo(shared_data / "faces" / "real_vs_fake" / "real-vs-fake")


# --- loopback servers -----------------------------------------------------------------------------


def _loopback_socket() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A TCP port nothing listens on (at the time of asking) on 127.0.0.1."""
    with _loopback_socket() as sock:
        return sock.getsockname()[1]


@contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (an API that hangs)."""
    with _loopback_socket() as sock:
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def serve_app(flask_app) -> Iterator[str]:
    """``flask_app`` served on 127.0.0.1 in a thread; yields the base URL, then stops the server and
    closes the app's model registry."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api-for-tests", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        flask_app.extensions["aiclassify"].registry.close()


@contextmanager
def serve_api(models: dict[str, str] | str) -> Iterator[str]:
    """The real Flask API on 127.0.0.1 in a thread, serving ``models`` (a ``{name: path}`` dict or
    ``name=path,...``), loaded before the first request. Yields the base URL."""
    from aiclassify.serving.app import create_app

    with serve_app(create_app(config={"models": models, "background_loading": False})) as url:
        yield url


def stop_process(process: subprocess.Popen, grace_s: float = 15) -> None:
    """Terminate a server started by a test, killing it if it does not stop within ``grace_s``."""
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@contextmanager
def server_process(
    name: str,
    command: list[str],
    ready_url: str,
    log: Path,
    env: dict[str, str],
    start_timeout_s: float,
    grace_s: float = 15,
) -> Iterator[subprocess.Popen]:
    """``command`` started in the repository (output to ``log``), waited for until ``ready_url``
    answers 200, and stopped (:func:`stop_process`) afterwards. Fails the test, with the end of the
    log, when the process exits early or is not ready within ``start_timeout_s``."""
    import requests

    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if requests.get(ready_url, timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy importing
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} was not ready within {start_timeout_s} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield process
    finally:
        stop_process(process, grace_s)


# --- the Streamlit page ---------------------------------------------------------------------------


def page(monkeypatch, url: str) -> Any:
    """The Streamlit page (app/streamlit_app.py) run once through AppTest against the API at ``url``."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("AICLASSIFY_API_URL", url)
    monkeypatch.delenv("AICLASSIFY_API_KEY", raising=False)
    if "AICLASSIFY_API_TIMEOUT_S" not in os.environ:
        monkeypatch.setenv("AICLASSIFY_API_TIMEOUT_S", "30")
    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at
