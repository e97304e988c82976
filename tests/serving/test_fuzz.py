"""Fuzz-style: a few hundred malformed and odd images, and every class of malformed request the API once
answered badly (deep JSON, long echoed names, repeated parameters...), generated here; never a 500, always
valid JSON."""

from __future__ import annotations

import base64
import io
import logging
import random
from collections import Counter
from collections.abc import Callable

import pytest
from builders import (
    animated,
    assert_matches_openapi,
    encode,
    exif_rotated_jpeg,
    gif_with_size,
    jpeg_with_size,
    openapi_document,
    png_with_size,
    sixteen_bit_png,
)
from PIL import Image

from aiclassify.serving.app import create_app
from aiclassify.serving.state import serving_state

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")

SEED = 1234
ALLOWED = {200, 400, 413, 415, 422}
FORMATS_BY_MODE = {
    "RGB": ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "ICO", "PPM", "TGA", "PCX", "SGI", "QOI"],
    "L": ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM", "TGA"],
    "1": ["PNG", "BMP", "TIFF", "GIF"],
    "P": ["PNG", "GIF", "BMP", "TIFF", "PCX"],
    "LA": ["PNG", "TIFF"],
    "RGBA": ["PNG", "WEBP", "TIFF", "TGA", "ICO"],
    "CMYK": ["JPEG", "TIFF"],
    "YCbCr": ["JPEG"],
    "I": ["PNG", "TIFF"],
    "F": ["TIFF"],
}


def random_image(rng: random.Random) -> bytes:
    """A valid image of a random mode, format and size (noise, so compression keeps data)."""
    mode = rng.choice(list(FORMATS_BY_MODE))
    fmt = rng.choice(FORMATS_BY_MODE[mode])
    size = (rng.randint(1, 64), rng.randint(1, 64))
    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    image = noise.convert(mode) if mode not in ("I", "F") else noise.convert("L").convert(mode)
    try:
        return encode(image, fmt)
    except (OSError, ValueError, KeyError):
        return encode(noise, "PNG")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Truncate, flip bytes, splice or duplicate part of ``data``."""
    kind = rng.choice(["truncate", "flip", "splice", "chop_head", "append"])
    if kind == "truncate":
        return data[: rng.randint(0, max(0, len(data) - 1))]
    if kind == "flip":
        buffer = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if buffer:
                buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        return bytes(buffer)
    if kind == "splice":
        cut = rng.randint(0, len(data))
        return data[:cut] + rng.randbytes(rng.randint(1, 64)) + data[cut:]
    if kind == "chop_head":
        return data[rng.randint(1, min(len(data), 40)) :]
    return data + data[: rng.randint(1, len(data) or 1)]


MAGIC = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"BM",
    b"II*\x00",
]
TEXTS = ["hello", "<svg xmlns='x'/>", '{"b64": 1}', "P3\n2 2\n255\n", "#define a 1"]


def huge_dimensions(rng: random.Random) -> bytes:
    """A PNG, GIF or JPEG header declaring absurd (or zero) dimensions."""
    make = rng.choice([png_with_size, gif_with_size, jpeg_with_size])
    limit = 100_000 if make is png_with_size else 65_535
    return make(min(rng.choice([0, 1, 65_535, 100_000]), limit), min(rng.choice([1, 30_000, 65_535]), limit))


GENERATORS: dict[str, Callable[[random.Random], bytes]] = {
    "valid": random_image,
    "mutated": lambda rng: mutate(random_image(rng), rng),
    "random bytes": lambda rng: rng.randbytes(rng.randint(1, 4096)),
    "magic then junk": lambda rng: rng.choice(MAGIC) + rng.randbytes(rng.randint(0, 512)),
    "text": lambda rng: rng.choice(TEXTS).encode() * rng.randint(1, 50),
    "zero bytes": lambda rng: b"",
    "huge dimensions": huge_dimensions,
    "animated": lambda rng: animated(rng.choice(["GIF", "WEBP"]), rng.randint(2, 4)),
    "exif rotated": lambda rng: exif_rotated_jpeg(rng.randint(0, 9), (rng.randint(2, 48), rng.randint(2, 9))),
    "sixteen bit": lambda rng: sixteen_bit_png((rng.randint(1, 32), rng.randint(1, 32))),
}
CASES_PER_KIND = 30


@pytest.fixture(scope="module")
def client(tiny_run):
    app = create_app(
        {
            "models": {"faces": str(tiny_run)},
            "background_loading": False,
            "max_batch_wait_ms": 0,
            "max_upload_mb": 1,
        }
    )
    yield app.test_client()
    serving_state(app).registry.close()


def cases() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    return [(kind, make(rng)) for kind, make in GENERATORS.items() for _ in range(CASES_PER_KIND)]


def test_fuzz_predict_never_fails_with_500(client):
    statuses: Counter = Counter()
    for index, (kind, data) in enumerate(cases()):
        field = "file" if index % 2 else "files"
        response = client.post(
            "/predict", content_type="multipart/form-data", data={field: (io.BytesIO(data), f"{kind}.bin")}
        )
        assert response.status_code in ALLOWED, (kind, index, response.get_json())
        body = assert_matches_openapi(response, "/predict")
        statuses[(kind, response.status_code)] += 1
        if response.status_code == 200:
            assert body["predictions"][0]["label"] in ("real", "ai-generated")
    print(sorted(statuses.items()))
    assert statuses[("valid", 200)] > 0 and statuses[("random bytes", 422)] > 0
    assert sum(statuses.values()) == len(GENERATORS) * CASES_PER_KIND


def test_fuzz_tf_serving_and_batches_never_fail_with_500(client):
    all_cases = cases()
    rng = random.Random(SEED + 1)
    for _ in range(40):
        batch = rng.sample(all_cases, rng.randint(1, 4))
        instances = [{"b64": base64.b64encode(data).decode()} for _, data in batch]
        response = client.post("/v1/models/faces:predict", json={"instances": instances})
        assert response.status_code in ALLOWED, ([kind for kind, _ in batch], response.get_json())
        body = assert_matches_openapi(response, "/v1/models/{name}:predict")
        if response.status_code == 200:
            assert len(body["predictions"]) == len(batch)


# --- malformed requests: every class the API once answered badly --------------------------------------

TF_PREDICT = "/v1/models/faces:predict"
PARAMETERS = ("model", "target_fpr", "operating_point", "explain")
MAX_ERROR_CHARS = 300  # an error quotes at most the first 64 characters of what the client sent
URL_SAFE = "abcXYZ019_-.~"
ANY_TEXT = URL_SAFE + " éßж中文😀'\"\\"


def random_text(rng: random.Random, length: int, alphabet: str = ANY_TEXT) -> str:
    """``length`` characters of ``alphabet`` (never ``/`` or ``:``)."""
    return "".join(rng.choice(alphabet) for _ in range(length))


def json_text(text: str, content_type: str = "application/json") -> dict:
    """Test-client arguments sending ``text`` as the body."""
    return {"data": text, "content_type": content_type}


def malformed_requests(rng: random.Random) -> list[tuple[str, str, str, dict, set[int]]]:
    """``(class, method, url, test-client keyword arguments, allowed statuses)`` for each bad request."""
    images = {"images": [{"b64": base64.b64encode(random_image(rng)).decode()}]}
    instances = {"instances": images["images"]}
    cases = []
    for depth in (rng.randint(900, 1100), rng.randint(10_000, 100_000)):  # deeply nested JSON
        nested = "[" * depth + "]" * depth
        cases += [
            ("deep json", "POST", "/predict", json_text(f'{{"images": {nested}}}'), {400}),
            ("deep json", "POST", TF_PREDICT, json_text(f'{{"instances": {nested}}}'), {400}),
            ("deep json", "POST", TF_PREDICT, json_text(nested, "text/plain"), {400}),
        ]
    huge = random_text(rng, 200_000)  # echoed input, about half the body limit; in a URL, under its 4 kB
    name = random_text(rng, rng.randint(1000, 3000), URL_SAFE)
    cases += [
        ("long name", "POST", "/predict", {"json": {**images, "model": huge}}, {404}),
        ("long name", "POST", "/predict", {"json": {**images, "operating_point": huge}}, {422}),
        ("long name", "POST", "/predict", {"json": {**images, "target_fpr": huge}}, {400}),
        ("long name", "POST", "/predict", {"json": {**images, "target_fpr": "1" + "0" * len(huge)}}, {400}),
        ("long name", "POST", f"/predict?model={name}", {"json": images}, {404}),
        ("long name", "POST", f"/v1/models/{name}:predict", {"json": instances}, {404}),
        ("long name", "GET", f"/v1/models/{name}", {}, {404}),
        ("long name", "GET", f"/v1/models/faces/versions/{name}/metadata", {}, {404}),
    ]
    for parameter in PARAMETERS:  # given twice, the first empty or not: a 400 naming it
        values = rng.choice([["", "faces"], ["0.01", "0.01"], ["", ""], ["true", "fpr_1pct", "x"]])
        query = "&".join(f"{parameter}={value}" for value in values)
        cases.append(("repeated", "POST", f"/predict?{query}", {"json": images}, {400}))
    for url in (TF_PREDICT, "/v1/models/faces/versions/1:predict"):  # the verb is not part of the name
        cases += [("verb", method, url, {}, {405}) for method in ("GET", "PUT", "DELETE")]
        cases.append(("verb", "OPTIONS", url, {}, {200}))
    for body in ({}, {**instances, "inputs": images["images"]}, {"instances": None}, {"inputs": []}):
        cases.append(("tf format", "POST", TF_PREDICT, {"json": body}, {400}))
    for value in ("0", "1", "-0.5", "1.5", "nan", "inf", "1e309", "0x1p-3"):  # target_fpr not in (0, 1)
        cases.append(("bounds", "POST", f"/predict?target_fpr={value}", {"json": images}, {400}))
    return cases


def test_fuzz_malformed_requests_never_fail_with_500(client, caplog):
    document = openapi_document()
    for kind, method, url, request_kwargs, statuses in malformed_requests(random.Random(SEED + 2)):
        with caplog.at_level(logging.ERROR, logger="aiclassify.serving"):
            response = client.open(url, method=method, **request_kwargs)
        where = (kind, method, url[:80])
        assert response.status_code in statuses, (*where, response.get_data(as_text=True)[:300])
        assert not caplog.records, where  # nothing logged as an error, no traceback
        if response.status_code == 405:
            assert "GET" not in response.headers["Allow"], where
        if method == "OPTIONS":
            continue
        body = response.get_json()
        assert set(body) == {"error"} and len(body["error"]) < MAX_ERROR_CHARS, where
        path = url.split("?")[0]
        documented = {"/predict": "/predict", TF_PREDICT: "/v1/models/{name}:predict"}.get(path)
        if documented and str(response.status_code) in document["paths"][documented]["post"]["responses"]:
            assert_matches_openapi(response, documented)
