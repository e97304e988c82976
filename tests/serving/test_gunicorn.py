"""The API served by a real gunicorn process on 127.0.0.1 (started and stopped here, bounded), with the
shipped gunicorn config module: what clients see over real sockets, raw ones where a test needs to
send what an HTTP library would not (chunked bodies, half a header, odd bytes in the request line)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from builders import assert_matches_openapi, chunked, image_bytes, multipart_body, noise_image
from conftest import free_port, server_process

pytest.importorskip("gunicorn")
requests = pytest.importorskip("requests")

START_TIMEOUT_S = 120  # gunicorn, TensorFlow import and two model loads on a busy 2-core machine
THREADS = 8
SOCKET_TIMEOUT_S = 3  # AICLASSIFY_SOCKET_TIMEOUT_S of the test server: short, to keep the slow test short
MAX_FORM_PARTS = 40


@pytest.fixture(scope="module")
def server(api_models):
    """Base URL of gunicorn (gunicorn_config, as `make serve` runs it) serving two tiny models with a 1 MB
    upload limit, 40 multipart parts and a 3 s socket timeout; yields (url, log path)."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
    env = {
        **os.environ,
        "AICLASSIFY_MODELS": ",".join(f"{name}={path}" for name, path in api_models.items()),
        "AICLASSIFY_MAX_UPLOAD_MB": "1",
        "AICLASSIFY_MAX_FORM_PARTS": str(MAX_FORM_PARTS),
        "AICLASSIFY_SOCKET_TIMEOUT_S": str(SOCKET_TIMEOUT_S),
        "AICLASSIFY_MAX_BATCH_WAIT_MS": "20",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:aiclassify.serving.gunicorn_config",
        "--bind",
        f"127.0.0.1:{port}",
        "--threads",
        str(THREADS),
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


# --- hardening: limits, connections, logs, slow clients, headers -------------------------------------


def connect(base: str, timeout_s: float = 30) -> socket.socket:
    """A raw TCP connection to the test server."""
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout_s)


def exchange(sock: socket.socket, data: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    """Send ``data`` (one raw request) on ``sock`` and read one whole response: (response, body)."""
    sock.sendall(data)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response, response.read()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (end of stream or reset) within the socket's timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def assert_connection_honest(sock: socket.socket, response: http.client.HTTPResponse) -> None:
    """The client can tell what happens next: ``Connection: close`` and the server closes, or
    ``keep-alive`` and the same connection carries another request."""
    if response.getheader("Connection") == "close":
        assert closed_by_server(sock), "said Connection: close and kept the connection open"
    else:
        assert response.getheader("Connection") == "keep-alive"
        try:
            again, _ = exchange(sock, b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        except (OSError, http.client.HTTPException) as error:
            pytest.fail(f"said Connection: keep-alive, then the next request failed: {error!r}")
        assert again.status == 200


def padded_png(size: int) -> bytes:
    """A valid PNG followed by zeros up to ``size`` bytes (decoders stop at its end marker)."""
    png = image_bytes("PNG")
    return png + b"\x00" * (size - len(png))


def test_chunked_body_is_held_to_the_same_limit(server):
    base, _ = server
    head = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    with connect(base) as sock:  # within the 1 MB limit: scored
        response, body = exchange(sock, head + chunked(padded_png(500_000)))
        assert response.status == 200, body
        assert_connection_honest(sock, response)
    with connect(base) as sock:  # 32 KB over: refused, not cut to 1 MB and scored
        response, body = exchange(sock, head + chunked(padded_png(1024 * 1024 + 32 * 1024)))
        assert response.status == 413, body
        assert "1 MB limit (AICLASSIFY_MAX_UPLOAD_MB)" in json.loads(body)["error"]
        assert_connection_honest(sock, response)


def test_413_names_the_limit_and_the_connection_is_honest(server):
    base, _ = server
    png = image_bytes("PNG")
    cases = {
        "declared too large": (b"", "image/png", 2 * 1024 * 1024, "1 MB limit (AICLASSIFY_MAX_UPLOAD_MB)"),
        "too many parts": (
            *multipart_body([("file", png)] * (MAX_FORM_PARTS + 1)),
            None,
            f"more than {MAX_FORM_PARTS} parts (AICLASSIFY_MAX_FORM_PARTS)",
        ),
        "text field too large": (
            *multipart_body([("model", b"x" * 300 * 1024), ("file", png)]),
            None,
            "256 KB limit (AICLASSIFY_MAX_FORM_FIELD_KB)",
        ),
    }
    for name, (body, content_type, declared, message) in cases.items():
        length = len(body) if declared is None else declared  # declared: the body is never sent
        head = f"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
        with connect(base) as sock:
            response, answer = exchange(sock, f"{head}Content-Length: {length}\r\n\r\n".encode() + body)
            assert response.status == 413, name
            assert message in json.loads(answer)["error"], name
            assert_connection_honest(sock, response)
            if name == "declared too large":  # its body was not read: the connection cannot go on
                assert response.getheader("Connection") == "close"


def test_a_body_refused_unread_leaves_the_connection_usable(server):
    base, _ = server
    body, content_type = multipart_body([("file", b"\x00" * 900_000)])
    head = f"POST /nowhere HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
    with connect(base) as sock:
        response, _ = exchange(sock, f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert response.status == 404
        assert response.getheader("Connection") == "keep-alive"
        assert_connection_honest(sock, response)


def test_logs_escape_what_clients_send(server):
    base, log = server
    forged = "2026-01-01 00:00:00,000 INFO aiclassify.serving.access: 10.0.0.1 GET /admin 200"
    path = "/x%0A" + requests.utils.quote(forged) + "%1b[31m%E2%80%A8"
    assert requests.get(base + path, timeout=10).status_code == 404
    with connect(base) as sock:  # gunicorn's own log line for a request line it refuses
        response, _ = exchange(sock, b"GET /\x1b[2J HTTP/1.1\r\nHost: test\r\n\r\n")
        assert response.status == 400
    text = log.read_text()
    assert "\x1b" not in text and "\u2028" not in text
    assert not any(line.startswith(forged[:23]) and "10.0.0.1" in line for line in text.splitlines())
    assert "GET /x\\x0a2026-01-01\\x2000:00:00,000\\x20INFO" in text and "\\x1b[31m\\u2028 404" in text
    assert "Invalid HTTP request line: 'GET /\\x1b[2J HTTP/1.1'" in text


def test_healthz_answers_while_slow_clients_hold_every_thread(server):
    base, log = server
    slow = [connect(base) for _ in range(2 * THREADS)]  # twice the threads, each half a header
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Half-A-Header: ")
        started = time.monotonic()
        response = requests.get(f"{base}/healthz", timeout=8 * SOCKET_TIMEOUT_S)
        waited = time.monotonic() - started
        assert response.status_code == 200
        assert waited < 6 * SOCKET_TIMEOUT_S  # two rounds of socket timeouts, and a loaded machine
        for sock in slow:  # each one closed by the server, not left holding a thread
            assert closed_by_server(sock)
            sock.close()  # gunicorn waits up to 2 s for it, accepting nothing meanwhile (docs/api.md)
    finally:
        for sock in slow:
            sock.close()
    text = log.read_text()  # one warning line each, not gunicorn's traceback
    assert f"the client sent or read nothing for {SOCKET_TIMEOUT_S:g} s (AICLASSIFY_SOCKET_TIMEOUT_S)" in text
    assert "Socket error processing request" not in text


def test_url_and_header_limits_answer_json_below_gunicorn(server):
    base, _ = server
    response = requests.get(f"{base}/healthz", params={"q": "a" * 5000}, timeout=10)
    assert response.status_code == 414 and "AICLASSIFY_MAX_URL_BYTES" in response.json()["error"]
    response = requests.get(f"{base}/healthz", headers={"X-Big": "a" * 5000}, timeout=10)
    assert response.status_code == 431 and "AICLASSIFY_MAX_HEADER_BYTES" in response.json()["error"]
    # What stays gunicorn's (HTML, listed in docs/api.md): beyond its own limits, and malformed requests.
    html = {
        "request line over 8190 bytes": (
            b"GET /healthz?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: test\r\n\r\n",
            414,
        ),
        "header over 8190 bytes": (
            b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
        ),
        "malformed header name": (b"GET /healthz HTTP/1.1\r\nHost: test\r\nBad Name: 1\r\n\r\n", 400),
    }
    for name, (data, status) in html.items():
        with connect(base) as sock:
            response, _ = exchange(sock, data)
            assert (response.status, response.getheader("Content-Type")) == (status, "text/html"), name
            assert response.getheader("Connection") == "close"


def test_security_headers(server):
    base, _ = server
    files = {"file": ("a.png", image_bytes(), "image/png")}
    for response in (
        requests.post(f"{base}/predict", files=files, timeout=30),
        requests.get(f"{base}/healthz", timeout=10),
        requests.get(f"{base}/nowhere", timeout=10),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Server"] == "gunicorn"  # no version; only a proxy can drop it (docs/api.md)
