"""The API served by a real gunicorn process on 127.0.0.1 (started and stopped here, bounded)."""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from builders import assert_matches_openapi, image_bytes, noise_image
from conftest import free_port, server_process

pytest.importorskip("gunicorn")
requests = pytest.importorskip("requests")

START_TIMEOUT_S = 120  # gunicorn, TensorFlow import and two model loads on a busy 2-core machine


@pytest.fixture(scope="module")
def server(api_models):
    """Base URL of gunicorn serving two tiny models with a 1 MB upload limit; yields (url, log path)."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
    env = {
        **os.environ,
        "AICLASSIFY_MODELS": ",".join(f"{name}={path}" for name, path in api_models.items()),
        "AICLASSIFY_MAX_UPLOAD_MB": "1",
        "AICLASSIFY_MAX_BATCH_WAIT_MS": "20",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "8",
        "--timeout",
        "120",
        "aiclassify.serving.app:create_app()",
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        with server_process("gunicorn", command, f"{base}/readyz", log, env, START_TIMEOUT_S):
            yield base, log
    finally:
        log.unlink(missing_ok=True)


def test_health_ready_and_openapi(server):
    base, _ = server
    assert assert_matches_openapi(requests.get(f"{base}/healthz", timeout=5), "/healthz", "get")
    body = assert_matches_openapi(requests.get(f"{base}/readyz", timeout=5), "/readyz", "get")
    assert body["ready"] and set(body["models"]) == {"faces", "general"}
    assert requests.get(f"{base}/openapi.json", timeout=5).json()["openapi"].startswith("3.1")


def test_predict_over_http(server):
    base, log = server
    response = requests.post(
        f"{base}/predict",
        params={"model": "general", "target_fpr": "0.01"},
        files=[
            ("file", ("a.jpg", image_bytes("JPEG"), "image/jpeg")),
            ("file", ("b.png", image_bytes("PNG", "RGBA"), "image/png")),
        ],
        timeout=30,
    )
    body = assert_matches_openapi(response, "/predict")
    assert [p["filename"] for p in body["predictions"]] == ["a.jpg", "b.png"]
    assert all(p["threshold"] == 0.9 and p["operating_point"] == "fpr_1pct" for p in body["predictions"])
    assert "POST /predict?model=general&target_fpr=0.01 200" in log.read_text()


def test_tf_serving_predict_over_http(server):
    base, _ = server
    instances = [{"b64": base64.b64encode(image_bytes()).decode()}]
    response = requests.post(f"{base}/v1/models/faces:predict", json={"instances": instances}, timeout=30)
    [probability] = assert_matches_openapi(response, "/v1/models/{name}:predict")["predictions"]
    assert 0 <= probability <= 1
    status = requests.get(f"{base}/v1/models/faces", timeout=5)
    assert assert_matches_openapi(status, "/v1/models/{name}", "get")["model_version_status"][0]["state"] == (
        "AVAILABLE"
    )


def test_errors_over_http(server):
    base, _ = server
    files = {"file": ("x.jpg", b"not an image", "image/jpeg")}
    response = requests.post(f"{base}/predict", files=files, timeout=10)
    assert response.status_code == 422 and assert_matches_openapi(response, "/predict")["error"]
    response = requests.post(
        f"{base}/predict",
        params={"model": "nope"},
        files={"file": ("x.png", image_bytes(), "image/png")},
        timeout=10,
    )
    assert response.status_code == 404 and assert_matches_openapi(response, "/predict")["error"]
    response = requests.post(f"{base}/predict", timeout=10)
    assert response.status_code == 400 and assert_matches_openapi(response, "/predict")["error"]


def test_body_over_the_limit_is_413(server):
    base, _ = server
    big = noise_image("BMP", size=(700, 700))  # 1.4 MB, limit 1 MB
    try:
        response = requests.post(f"{base}/predict", files={"file": ("big.bmp", big, "image/bmp")}, timeout=30)
    except requests.ConnectionError:  # the server may close before the client has sent everything
        pytest.fail("gunicorn dropped the connection instead of answering 413")
    assert response.status_code == 413
    assert "1 MB" in assert_matches_openapi(response, "/predict")["error"]
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200


def test_concurrent_requests(server):
    base, _ = server
    images = [noise_image("PNG", size=(48, 48), seed=seed) for seed in range(24)]

    def send(data: bytes) -> int:
        files = {"file": ("n.png", data, "image/png")}
        return requests.post(f"{base}/predict", files=files, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, images))
    assert statuses == [200] * len(images)
