"""Model and filter code needs only Keras: every registered model, with every filter, builds and runs
under a second Keras backend (JAX or PyTorch), never importing TensorFlow, and the filters compute
what they compute under TensorFlow.

The second backend runs in a subprocess: this interpreter when it has JAX or PyTorch, else the one in
``AICLASSIFY_SECOND_BACKEND_PYTHON`` (an environment with keras, one of them and this package, e.g.
``pip install 'jax[cpu]' keras pyyaml && pip install --no-deps -e .``). Skipped, saying so, when
neither is there.

The keras-hub models (``resnet18``, ``vit_b16``, and any model built on them) are built in a second
pass: keras-hub itself imports TensorFlow whenever it is installed, so the first pass blocks its
import, and the "never imports TensorFlow" check covers the project's own code. The second pass
builds them when that interpreter has keras-hub, and they are compared too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from aiclassify.backbones import HUB_BACKBONES
from aiclassify.filters import FILTER_NAMES, make_filter
from aiclassify.models import build_model, standalone_model_names

BACKENDS = ("jax", "torch")
FIND_PACKAGES = (
    "import importlib.util as u, sys; sys.exit(not (u.find_spec('keras') and u.find_spec('{backend}')))"
)
SIZES = (32, 64)
SEED = 7

SCRIPT = """
import importlib.util, json, sys
import numpy as np
import keras
from aiclassify.filters import FILTER_NAMES, make_filter
from aiclassify.models import build_model, standalone_model_names


class BlockKerasHub:
    def find_spec(self, name, path=None, target=None):
        if name == "keras_hub" or name.startswith("keras_hub."):
            raise ImportError("keras_hub blocked in the first pass")


def record(name, size):
    model = build_model(name, size)
    batch = np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype("float32")
    output = np.asarray(model(batch))
    result["models"][f"{name}@{size}"] = {
        "params": model.count_params(),
        "layers": [layer.name for layer in model.layers],
        "shape": list(output.shape),
        "in_range": bool(np.all((output >= 0) & (output <= 1))),
    }


sizes, seed = json.loads(sys.argv[1])
has_keras_hub = importlib.util.find_spec("keras_hub") is not None
images = np.random.default_rng(seed).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
result = {"backend": keras.backend.backend(), "models": {}, "filters": {}, "needs_keras_hub": []}
blocker = BlockKerasHub()
sys.meta_path.insert(0, blocker)
for name in standalone_model_names():
    try:
        for size in sizes:
            record(name, size)
    except ImportError as error:
        if "keras-hub" not in str(error):
            raise
        result["needs_keras_hub"].append(name)
for name in FILTER_NAMES:
    if name != "none":
        build_model("cnn_small2", 32, filter_name=name)
        result["filters"][name] = np.asarray(make_filter(name, sigma=1.5, kernel_size=5)(images)).tolist()
result["imported_tensorflow"] = "tensorflow" in sys.modules
sys.meta_path.remove(blocker)
if has_keras_hub:
    for name in result["needs_keras_hub"]:
        for size in sizes:
            record(name, size)
print(json.dumps(result))
"""


def second_backend() -> tuple[str, str] | None:
    """(python, backend) of an interpreter with Keras and JAX or PyTorch, or None."""
    for python in filter(None, (sys.executable, os.environ.get("AICLASSIFY_SECOND_BACKEND_PYTHON"))):
        for backend in BACKENDS:
            found = FIND_PACKAGES.format(backend=backend)  # without importing them: Keras picks a backend
            if subprocess.run([python, "-c", found], capture_output=True, timeout=60).returncode == 0:
                return python, backend
    return None


@pytest.fixture(scope="module")
def second_backend_result() -> dict:
    found = second_backend()
    if found is None:
        pytest.skip(
            "no second Keras backend: install jax or torch here, or point AICLASSIFY_SECOND_BACKEND_PYTHON "
            "at an interpreter that has one"
        )
    python, backend = found
    environment = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO / "src")}
    completed = subprocess.run(
        [python, "-c", SCRIPT, json.dumps([SIZES, SEED])],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_model_builds_and_runs_without_tensorflow(second_backend_result):
    assert second_backend_result["backend"] in BACKENDS
    assert not second_backend_result["imported_tensorflow"]
    assert set(second_backend_result["needs_keras_hub"]) >= set(HUB_BACKBONES)
    for name in standalone_model_names():
        if f"{name}@{SIZES[0]}" not in second_backend_result["models"]:
            assert name in second_backend_result["needs_keras_hub"], name  # no keras-hub over there
            continue
        for size in SIZES:
            built = second_backend_result["models"][f"{name}@{size}"]
            reference = build_model(name, size)  # this process: the TensorFlow backend
            assert built["params"] == reference.count_params(), f"{name}@{size}"
            assert built["layers"] == [layer.name for layer in reference.layers], f"{name}@{size}"
            assert built["shape"] == [2, 1] and built["in_range"], f"{name}@{size}"


def test_filters_compute_the_same_under_both_backends(second_backend_result):
    images = np.random.default_rng(SEED).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for name in FILTER_NAMES:
        if name == "none":
            continue
        expected = np.asarray(make_filter(name, sigma=1.5, kernel_size=5)(images))
        np.testing.assert_allclose(
            np.asarray(second_backend_result["filters"][name]), expected, rtol=1e-5, atol=1e-3, err_msg=name
        )
