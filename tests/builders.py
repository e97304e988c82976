"""Plain builders of test inputs, shared by the test folders: generated and malformed images, image
files on disk, synthetic scores, a fake Predictor, and checks of responses against the OpenAPI document.

Not a conftest: the test modules import what they use (``from builders import ...``). Fixtures and
server helpers live in conftest.py.
"""

from __future__ import annotations

import functools
import io
import itertools
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from PIL import Image

from aiclassify.calibration import sigmoid
from aiclassify.predict import Predictor


class FakePredictor(Predictor):
    """A :class:`Predictor` whose score function rates images by their size in bytes; it records
    batch sizes and can block (``release``) or fail after the warm-up call (``fail_with``)."""

    def __init__(
        self,
        metadata: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
        fail_with: Exception | None = None,
    ):
        self.fail_with = fail_with
        self.release = threading.Event()
        self.release.set()
        self.batches: list[int] = []
        self.calls = 0
        metadata = {"name": "fake", "model": "fake", "threshold": 0.5, **(metadata or {})}
        super().__init__(self._fake_score, metadata, calibration, calibration_source="fake")

    def _fake_score(self, images: list[bytes]) -> list[float]:
        self.release.wait(30)
        self.calls += 1
        if self.fail_with is not None and self.calls > 1:  # the warm-up call succeeds
            raise self.fail_with
        self.batches.append(len(images))
        return [(len(image) % 100) / 100 for image in images]


class FakeDetector:
    """A face detector (the interface of :class:`aiclassify.faces.FaceDetector`) that needs no model:
    it "finds" ``count`` faces side by side in the middle band of any image of at least 64 pixels a
    side, each a square with its landmarks where a frontal face has them, and raises ``fail_with``
    (after the warm-up search) on images of that width."""

    max_faces, min_face_size, min_confidence, max_search_side = 20, 32, 0.9, 1024

    def __init__(self, count: int = 2, fail_on_width: int | None = None):
        self.count = count
        self.fail_on_width = fail_on_width
        self.searched: list[tuple[int, int]] = []

    def detect(self, image: np.ndarray) -> list:
        from aiclassify.faces import Face, FaceDetectionError, Landmarks

        height, width = image.shape[:2]
        self.searched.append((width, height))
        if width == self.fail_on_width:
            raise FaceDetectionError(f"fake failure on a {width}x{height} image")
        if min(width, height) < 64:
            return []
        side = min(height // 2, width // (self.count + 1))
        faces = []
        for number in range(self.count):
            x, y = (number + 1) * width // (self.count + 1) - side // 2, (height - side) // 2
            eyes_y, mouth_y = y + 0.4 * side, y + 0.75 * side
            landmarks = Landmarks(
                (x + 0.3 * side, eyes_y),
                (x + 0.7 * side, eyes_y),
                (x + 0.5 * side, y + 0.55 * side),
                (x + 0.35 * side, mouth_y),
                (x + 0.65 * side, mouth_y),
            )
            faces.append(Face((x, y, side, side), 0.99 - 0.01 * number, landmarks))
        return faces


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    """``image`` encoded as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    """A deterministic, non-uniform test image (so that rotations change the pixels)."""
    width, height = size
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    rgb = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb).convert(mode)


def image_bytes(
    fmt: str = "PNG", mode: str = "RGB", size: tuple[int, int] = (40, 30), **options: Any
) -> bytes:
    """A gradient image of ``mode`` and ``size`` encoded as ``fmt``."""
    return encode(gradient(size, mode), fmt, **options)


def noise_image(fmt: str = "PNG", size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """Random RGB noise encoded as ``fmt`` (compresses badly, so truncation cuts pixel data)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), fmt)


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of ``data``."""
    return data[: int(len(data) * fraction)]


def multipart_body(parts: list[tuple[str, bytes]], boundary: str = "test-boundary-3f9a") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body of ``(field, data)`` parts (a field named ``file`` or ``files`` is
    sent as a PNG file, any other as a text field) and its Content-Type."""
    sections = []
    for name, data in parts:
        if name in ("file", "files"):
            disposition = f'form-data; name="{name}"; filename="{name}.png"\r\nContent-Type: image/png'
        else:
            disposition = f'form-data; name="{name}"'
        sections.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    return b"".join(sections) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def chunked(data: bytes, chunk_size: int = 64 * 1024) -> bytes:
    """``data`` in HTTP/1.1 chunked transfer coding, ``chunk_size`` bytes a chunk, with the last chunk."""
    chunks = [data[start : start + chunk_size] for start in range(0, len(data), chunk_size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def exif_rotated_jpeg(orientation: int = 6, size: tuple[int, int] = (40, 20)) -> bytes:
    """A JPEG whose EXIF says to rotate it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(gradient(size), "JPEG", exif=exif, quality=95)


def animated(fmt: str = "GIF", frames: int = 3) -> bytes:
    """An animation of differently coloured frames."""
    images = [Image.new("RGB", (24, 24), (80 * i, 40, 200 - 60 * i)) for i in range(frames)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=50, loop=0)


def sixteen_bit_png(size: tuple[int, int] = (20, 20)) -> bytes:
    """A 16-bit greyscale PNG using the full 0-65535 range."""
    pixels = np.linspace(0, 65535, size[0] * size[1]).reshape(size[1], size[0]).astype(np.uint16)
    return encode(Image.fromarray(pixels), "PNG")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` with almost no pixel data (a bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def gif_with_size(width: int, height: int) -> bytes:
    """A one-pixel GIF whose logical screen and frame claim ``width`` x ``height``."""
    data = bytearray(encode(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    descriptor = data.index(b"\x2c")
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(image_bytes("JPEG", size=(16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def many_scan_jpeg(width: int, height: int, extra_scans: int) -> bytes:
    """A flat grey progressive JPEG (Pillow writes 10 scans) with its last scan repeated
    ``extra_scans`` more times: a few bytes a scan, yet each scan is a pass over the whole image, so
    decoders take seconds (libjpeg warns of the odd progression and decodes on)."""
    data = encode(Image.new("RGB", (width, height), (120, 130, 140)), "JPEG", progressive=True, quality=90)
    last_scan = data.rindex(b"\xff\xda")  # flat: no 0xFF in the entropy-coded data
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + data[last_scan:-2] * extra_scans + data[-2:]


def two_images() -> list[tuple[str, bytes]]:
    """A JPEG and a PNG, as (file name, bytes)."""
    return [
        ("photo.jpg", image_bytes("JPEG", size=(48, 40))),
        ("render.png", image_bytes("PNG", size=(40, 30))),
    ]


def image_writer(first_seed: int = 0) -> Callable[..., Path]:
    """A ``write_image(path, size=(8, 8), mode="RGB", pixels=None)`` that saves a small image (format
    by suffix) of random pixels, different for every call (seeds ``first_seed``, ``first_seed + 1``,
    ...), or of ``pixels`` when given (no seed used)."""
    seeds = itertools.count(first_seed)

    def write_image(
        path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB", pixels: np.ndarray | None = None
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if pixels is None:
            channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
            pixels = np.random.default_rng(next(seeds)).integers(
                0, 256, (size[1], size[0], channels), dtype=np.uint8
            )
            pixels = pixels.squeeze() if channels == 1 else pixels
        Image.fromarray(pixels).save(path)
        return path

    return write_image


def calibrated_sample(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from their own probabilities: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size)
    probabilities = sigmoid(logits)
    return (rng.random(size) < probabilities).astype(int), probabilities


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as an app serves it at /openapi.json."""
    from aiclassify.serving.app import create_app
    from aiclassify.serving.state import serving_state

    app = create_app({"background_loading": False}, predictors={"fake": FakePredictor()})
    try:
        response = app.test_client().get("/openapi.json")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()
    finally:
        serving_state(app).registry.close()


def assert_matches_openapi(response, path: str, method: str = "post") -> dict[str, Any]:
    """Check ``response``'s JSON against the OpenAPI schema of ``path``/``method``/status; return it."""
    document = openapi_document()
    responses = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method.upper()} {path} answered {status}, not in the OpenAPI document"
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json() if callable(getattr(response, "json", None)) else response.get_json()
    schema = {
        **responses[status]["content"]["application/json"]["schema"],
        "components": document["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(body)
    return body


GROUP_PHOTOS = ("valid/real/00053.jpg", "valid/real/00119.jpg", "valid/real/00136.jpg")
"""Three photos of the 140k faces sample (``real-vs-fake/`` of ../shared/data/faces.tar.gz), one
person each, in which the detector finds one face each."""
GROUP_PLACES = ((40, 90, 330), (430, 40, 400), (880, 120, 290))
"""Where :func:`group_photo` pastes :data:`GROUP_PHOTOS`: ``(x, y, side)`` each, left to right."""
GROUP_SIZE = (1200, 500)


def group_photo(faces_sample: Path, fmt: str = "JPEG") -> bytes:
    """A group photo: :data:`GROUP_PHOTOS` of ``faces_sample`` (the sample's ``real-vs-fake`` folder)
    pasted at :data:`GROUP_PLACES` on a :data:`GROUP_SIZE` noise background
    (:func:`aiclassify.faces.measure.paste_photos`), encoded as ``fmt``."""
    from aiclassify.faces.measure import load_rgb, paste_photos

    photos = [load_rgb(faces_sample / name) for name in GROUP_PHOTOS]
    options = {"quality": 92} if fmt == "JPEG" else {}
    return encode(Image.fromarray(paste_photos(GROUP_SIZE, photos, GROUP_PLACES)), fmt, **options)
