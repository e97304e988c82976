"""``POST /predict?explain=true``: Grad-CAM overlays from the run's model.keras (Flask test client), their
capped size, the peak memory of explaining a large image, and the limit on concurrent explanations."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from builders import assert_matches_openapi, image_bytes
from conftest import tiny_overrides
from PIL import Image

from aiclassify.serving.app import create_app
from aiclassify.serving.errors import ApiError
from aiclassify.serving.explanations import ExplanationSlots
from aiclassify.serving.state import serving_state


@pytest.fixture(scope="module")
def client(tiny_run, bare_saved_model):
    """``run``: a run directory; ``bare``: the same run's SavedModel alone (no model.keras)."""
    application = create_app(
        {
            "models": {"run": str(tiny_run), "bare": str(bare_saved_model)},
            "background_loading": False,
            "max_batch_wait_ms": 1,
        }
    )
    yield application.test_client()
    serving_state(application).registry.close()


def overlay_of(prediction: dict) -> Image.Image:
    explanation = prediction["explanation"]
    assert explanation["method"] == "grad-cam" and explanation["layer"] == "block2_conv1"
    image = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png_b64"], validate=True)))
    assert image.format == "PNG"
    return image


def test_explain_in_the_query_adds_an_overlay_of_the_image_size(client):
    files = [
        (io.BytesIO(image_bytes(size=(48, 40))), "a.png"),
        (io.BytesIO(image_bytes("JPEG", size=(30, 50))), "b.jpg"),
    ]
    response = client.post("/predict?explain=true", data={"file": files}, content_type="multipart/form-data")
    body = assert_matches_openapi(response, "/predict")
    sizes = [overlay_of(p).size for p in body["predictions"]]
    assert sizes == [(48, 40), (30, 50)] == [(p["width"], p["height"]) for p in body["predictions"]]


def test_explain_in_the_form_and_json_body(client):
    response = client.post(
        "/predict",
        data={"file": (io.BytesIO(image_bytes()), "a.png"), "explain": "1"},
        content_type="multipart/form-data",
    )
    assert overlay_of(assert_matches_openapi(response, "/predict")["predictions"][0]).size == (40, 30)
    payload = {"images": [{"b64": base64.b64encode(image_bytes()).decode()}], "explain": True}
    body = assert_matches_openapi(client.post("/predict", json=payload), "/predict")
    assert overlay_of(body["predictions"][0]).size == (40, 30)


def test_no_explanation_unless_asked(client):
    for query in ("", "?explain=false", "?explain=0"):
        response = client.post(f"/predict{query}", data=image_bytes(), content_type="image/png")
        assert "explanation" not in assert_matches_openapi(response, "/predict")["predictions"][0]


def test_explain_without_model_keras_is_422(client):
    response = client.post("/predict?model=bare&explain=true", data=image_bytes(), content_type="image/png")
    assert response.status_code == 422
    assert "run directory with model.keras" in assert_matches_openapi(response, "/predict")["error"]
    response = client.post("/predict?model=bare", data=image_bytes(), content_type="image/png")
    assert assert_matches_openapi(response, "/predict")["predictions"][0]["label"]


def test_explain_with_a_model_without_convolutions_is_422_and_scoring_still_works(
    tiny_run, demo_data, tmp_path
):
    from aiclassify.config import load_config
    from aiclassify.train import train

    members = f"[{tiny_run},{tiny_run}]"
    config = load_config(
        None, tiny_overrides(demo_data, **{"model.name": "ensemble", "model.members": members})
    )
    train(config, tmp_path / "ensemble")
    application = create_app(
        {"models": {"ensemble": str(tmp_path / "ensemble")}, "background_loading": False}
    )
    ensemble = application.test_client()
    try:
        response = ensemble.post("/predict?explain=true", data=image_bytes(), content_type="image/png")
        assert response.status_code == 422
        error = assert_matches_openapi(response, "/predict")["error"]
        assert "explanations need a convolutional layer" in error and "no Conv2D layer" in error
        response = ensemble.post("/predict", data=image_bytes(), content_type="image/png")
        assert assert_matches_openapi(response, "/predict")["predictions"][0]["label"]
    finally:
        serving_state(application).registry.close()


def test_bad_explain_value_is_400(client):
    response = client.post("/predict?explain=maybe", data=image_bytes(), content_type="image/png")
    assert response.status_code == 400
    assert "explain must be true or false" in assert_matches_openapi(response, "/predict")["error"]


def test_a_saved_model_inside_its_run_directory_explains_with_the_runs_model_keras(tiny_run):
    app = create_app({"models": {"inner": str(tiny_run / "saved_model")}, "background_loading": False})
    try:
        response = app.test_client().post(
            "/predict?explain=true", data=image_bytes(), content_type="image/png"
        )
        assert overlay_of(assert_matches_openapi(response, "/predict")["predictions"][0]).size == (40, 30)
    finally:
        serving_state(app).registry.close()


# --- bounded memory: overlays at a capped size, a bounded number of explanations at once ---------

MEMORY_PROBE = """
import base64, io, json, re, sys
from pathlib import Path

import numpy as np
from PIL import Image

from aiclassify.serving.app import create_app


def mib(field):
    return int(re.search(field + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024


run, side = sys.argv[1], int(sys.argv[2])
pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
buffer = io.BytesIO()
Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
large = buffer.getvalue()
del pixels, buffer
client = create_app({"models": {"run": run}, "background_loading": False, "max_upload_mb": 64}).test_client()
small = io.BytesIO()
Image.new("RGB", (40, 30), (90, 120, 30)).save(small, format="PNG")
warm = client.post("/predict?explain=true", data=small.getvalue(), content_type="image/png")
assert warm.status_code == 200, warm.get_data(as_text=True)
try:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident memory, to now
except OSError:
    sys.exit(3)
before = mib("VmRSS")
response = client.post("/predict?explain=true", data=large, content_type="image/jpeg")
peak = mib("VmHWM") - before
size = None
if response.status_code == 200:
    overlay = response.get_json()["predictions"][0]["explanation"]["overlay_png_b64"]
    size = Image.open(io.BytesIO(base64.b64decode(overlay))).size
print(json.dumps({"status": response.status_code, "peak_mib": peak, "upload_mib": len(large) / 2**20,
                  "overlay_size": size}))
"""
LARGE_SIDE = 6000  # a 36-megapixel upload, as in the issue
PEAK_BOUND_MIB = 512  # measured 233 MiB; before the overlay was capped: 3,461 MiB


def test_explaining_a_6000px_jpeg_stays_under_512_mib_above_the_warm_process(tiny_run, tmp_path):
    """Peak resident memory (VmHWM, reset just before) of one ``explain=true`` request on a 6000x6000
    noise JPEG, in a fresh process with the model warm: the decoded image (103 MiB as 8-bit RGB, once
    for Pillow's checks, once for the model) and no full-resolution float arrays."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tiny_run), str(LARGE_SIDE)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    if result.returncode == 3:
        pytest.skip("/proc/self/clear_refs cannot reset the peak resident memory here")
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["status"] == 200
    assert measured["peak_mib"] < PEAK_BOUND_MIB, measured["peak_mib"]
    assert measured["overlay_size"] == [1024, 1024]  # AICLASSIFY_MAX_EXPLANATION_SIDE's default


@pytest.fixture(scope="module")
def small_overlays(tiny_run):
    """Overlays at most 32 pixels a side; one explanation at a time, waiting at most 0.3 s."""
    application = create_app(
        {
            "models": {"run": str(tiny_run)},
            "background_loading": False,
            "max_explanation_side": 32,
            "max_concurrent_explanations": 1,
            "explanation_wait_s": 0.3,
        }
    )
    yield application
    serving_state(application).registry.close()


def test_the_overlay_is_scaled_down_to_the_max_side_with_its_aspect(small_overlays):
    files = [
        (io.BytesIO(image_bytes(size=(48, 40))), "wide.png"),
        (io.BytesIO(image_bytes("JPEG", size=(30, 64))), "tall.jpg"),
        (io.BytesIO(image_bytes(size=(20, 10))), "small.png"),
    ]
    client = small_overlays.test_client()
    response = client.post("/predict?explain=true", data={"file": files}, content_type="multipart/form-data")
    body = assert_matches_openapi(response, "/predict")
    assert [overlay_of(p).size for p in body["predictions"]] == [(32, 27), (15, 32), (20, 10)]
    assert [(p["width"], p["height"]) for p in body["predictions"]] == [(48, 40), (30, 64), (20, 10)]


def test_an_explanation_over_the_concurrency_limit_waits_then_is_503(small_overlays):
    client = small_overlays.test_client()
    slots = serving_state(small_overlays).explanation_slots
    with slots.hold():  # another request is explaining
        started = time.perf_counter()
        response = client.post("/predict?explain=true", data=image_bytes(), content_type="image/png")
        waited = time.perf_counter() - started
        assert response.status_code == 503 and waited >= 0.3
        message = assert_matches_openapi(response, "/predict")["error"]
        assert "too many explanations in progress" in message and "1 request(s) at a time" in message
        plain = client.post("/predict", data=image_bytes(), content_type="image/png")
        assert plain.status_code == 200  # predictions without explain=true are not limited
    assert slots.active == 0
    response = client.post("/predict?explain=true", data=image_bytes(), content_type="image/png")
    assert overlay_of(assert_matches_openapi(response, "/predict")["predictions"][0]).size == (32, 24)


def test_explanation_slots_admit_up_to_the_limit_then_refuse_after_wait_s():
    slots = ExplanationSlots(limit=2, wait_s=0.1)
    with slots.hold(), slots.hold():
        assert slots.active == 2
        started = time.perf_counter()
        with pytest.raises(ApiError) as refused, slots.hold():
            pass
        assert time.perf_counter() - started >= 0.1
    assert refused.value.status == 503 and refused.value.reason == "explanations_busy"
    with pytest.raises(RuntimeError), slots.hold():
        raise RuntimeError("an explanation that fails still frees its slot")
    assert slots.active == 0
    with slots.hold(), slots.hold():
        assert slots.active == 2


def test_a_waiting_explanation_gets_the_slot_another_frees():
    slots = ExplanationSlots(limit=1, wait_s=5.0)
    entered, release = threading.Event(), threading.Event()

    def explain() -> None:
        with slots.hold():
            entered.set()
            release.wait(5)

    holder = threading.Thread(target=explain)
    holder.start()
    assert entered.wait(5)
    threading.Timer(0.2, release.set).start()
    started = time.perf_counter()
    with slots.hold():
        waited = time.perf_counter() - started
        assert slots.active == 1
    holder.join(5)
    assert 0.15 <= waited < 5
