"""The request limits of aiclassify.serving.request_limits, through Flask's test client (the same limits
over a real gunicorn: test_gunicorn.py)."""

from __future__ import annotations

import gzip
import io

import pytest
from builders import FakePredictor, assert_matches_openapi, image_bytes, multipart_body, openapi_document

from aiclassify.serving.app import create_app
from aiclassify.serving.request_limits import PartCountingStream, read_at_most
from aiclassify.serving.state import serving_state

LIMIT = 1024 * 1024  # max_upload_mb 1
MAX_FORM_PARTS = 40


@pytest.fixture(scope="module")
def client():
    app = create_app(
        {"background_loading": False, "max_upload_mb": 1, "max_form_parts": MAX_FORM_PARTS},
        predictors={"fake": FakePredictor()},
    )
    yield app.test_client()
    serving_state(app).registry.close()


def post_chunked(client, body: bytes):
    """POST ``body`` as a server passes on a chunked one: no Content-Length, ``wsgi.input_terminated``."""
    return client.post(
        "/predict",
        input_stream=io.BytesIO(body),
        content_type="image/png",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )


def test_a_body_without_content_length_is_held_to_the_limit(client):
    png = image_bytes("PNG")
    for size, status in ((500_000, 200), (LIMIT, 200), (LIMIT + 1, 413), (3 * LIMIT, 413)):
        response = post_chunked(client, png + b"\x00" * (size - len(png)))  # a PNG, then padding
        assert response.status_code == status, size
        if status == 413:
            assert "1 MB limit (AICLASSIFY_MAX_UPLOAD_MB)" in response.get_json()["error"]


def test_each_413_names_the_limit_it_hit(client):
    png = image_bytes("PNG")
    cases = [
        (
            [("file", png)] * (MAX_FORM_PARTS + 1),
            f"multipart body with more than {MAX_FORM_PARTS} parts (AICLASSIFY_MAX_FORM_PARTS)",
        ),
        ([("model", b"x" * 300 * 1024), ("file", png)], "256 KB limit (AICLASSIFY_MAX_FORM_FIELD_KB)"),
        ([("file", b"\x00" * (LIMIT + 1))], "1 MB limit (AICLASSIFY_MAX_UPLOAD_MB)"),
    ]
    for parts, message in cases:
        body, content_type = multipart_body(parts)
        response = client.post("/predict", data=body, content_type=content_type)
        assert response.status_code == 413
        assert message in response.get_json()["error"]
    body, content_type = multipart_body([("file", png)] * 32 + [("model", b"fake")])  # 33 parts: fine
    assert client.post("/predict", data=body, content_type=content_type).status_code == 200


def test_url_and_header_limits_answer_json(client):
    response = client.get("/healthz?q=" + "a" * 4096)
    assert response.status_code == 414
    assert response.get_json() == {
        "error": "request target longer than 4096 bytes (AICLASSIFY_MAX_URL_BYTES)"
    }
    assert client.get("/healthz?q=" + "a" * 4000).status_code == 200
    response = client.get("/healthz", headers={"X-Big": "a" * 4096})
    assert response.status_code == 431
    assert "'X-Big' longer than 4096 bytes (AICLASSIFY_MAX_HEADER_BYTES)" in response.get_json()["error"]


def test_every_operation_declares_the_head_limits_it_enforces(client):
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            assert {"414", "431"} <= set(operation["responses"]), f"{method.upper()} {path}"
    long_target = client.post("/predict?q=" + "a" * 4096, data=image_bytes(), content_type="image/png")
    assert long_target.status_code == 414 and assert_matches_openapi(long_target, "/predict")["error"]
    big_header = client.get("/v1/models/fake", headers={"X-Big": "a" * 4096})
    assert big_header.status_code == 431
    assert assert_matches_openapi(big_header, "/v1/models/{name}", "get")["error"]


def test_every_answer_carries_the_security_headers(client):
    for response in (client.get("/healthz"), client.get("/nowhere"), client.post("/predict")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("read_size", [1, 7, 100, 64 * 1024])
def test_part_counting_stream_counts_part_starts_whatever_the_reads(read_size):
    body, content_type = multipart_body([("file", b"--a\r\n--b"), ("model", b"x"), ("file", b"y" * 5000)])
    boundary = content_type.split("boundary=")[1].encode()
    stream = PartCountingStream(io.BytesIO(body), boundary)
    received = b"".join(iter(lambda: stream.read(read_size), b""))
    assert received == body
    assert stream.parts == 3  # the closing delimiter starts no part


def test_read_at_most_never_reads_past_the_size():
    source = io.BytesIO(b"x" * 200_000)
    assert len(read_at_most(source, 100_001)) == 100_001 and source.tell() == 100_001
    assert read_at_most(io.BytesIO(b"short"), 10) == b"short"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP, identity"])
def test_a_compressed_body_is_a_415_naming_its_encoding(client, encoding):
    png = image_bytes("PNG")
    posts = [
        ("/predict", {"data": gzip.compress(png), "content_type": "image/png"}),
        (
            "/v1/models/fake:predict",
            {"data": gzip.compress(b'{"instances": []}'), "content_type": "application/json"},
        ),
    ]
    for url, body in posts:
        response = client.post(url, headers={"Content-Encoding": encoding}, **body)
        assert response.status_code == 415, url
        message = assert_matches_openapi(response, url.replace("fake", "{name}"))["error"]
        assert message == f"Content-Encoding {encoding!r} is not supported: send the body uncompressed"
    assert (
        client.post(
            "/predict", data=png, content_type="image/png", headers={"Content-Encoding": "identity"}
        ).status_code
        == 200
    )
    assert client.get("/healthz", headers={"Content-Encoding": encoding}).status_code == 200  # no body read


def test_a_transfer_coding_besides_chunked_is_a_415(client):
    # gunicorn accepts "gzip, chunked" and passes the body on still gzipped
    response = client.post(
        "/predict",
        input_stream=io.BytesIO(gzip.compress(image_bytes("PNG"))),
        content_type="image/png",
        headers={"Transfer-Encoding": "gzip, chunked"},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == 415
    message = assert_matches_openapi(response, "/predict")["error"]
    assert message == "Transfer-Encoding 'gzip, chunked' is not supported: send the body uncompressed"
    assert post_chunked(client, image_bytes("PNG")).status_code == 200
