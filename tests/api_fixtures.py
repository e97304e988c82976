"""Shared helpers for the API tests: tiny real runs, generated images, OpenAPI response checks.

Not a conftest: the test modules import what they use. Runs are built once per test process.
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import shutil
import struct
import subprocess
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from PIL import Image

from aiclassify.predictor import Predictor

CALIBRATION = {"temperature": 2.0, "fitted_on": "validation"}
OPERATING_POINTS = [
    {"name": "fpr_1pct", "target_fpr": 0.01, "threshold": 0.9, "fpr": 0.01, "tpr": 0.5},
    {"name": "fpr_5pct", "target_fpr": 0.05, "threshold": 0.7, "fpr": 0.05, "tpr": 0.7},
    {"name": "balanced", "target_fpr": None, "threshold": 0.3, "fpr": 0.1, "tpr": 0.9},
]


@functools.cache
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="aiclassify-api-tests-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def tiny_run() -> Path:
    """A finished run of a tiny CNN on a tiny demo dataset (about ten seconds, once per process)."""
    from aiclassify.config import load_config
    from aiclassify.train import train

    root = _workdir()
    config = load_config(
        None,
        [
            "data.source=demo",
            f"data.path={root}/demo",
            "data.demo_images_per_class=24",
            "data.image_size=32",
            "model.name=cnn_small2",
            "train.epochs=1",
            "train.batch_size=16",
            "train.verbose=0",
        ],
    )
    train(config, root / "run")
    return root / "run"


def _renamed_copy(name: str) -> Path:
    """A copy of :func:`tiny_run` whose metadata names the run ``name``."""
    destination = _workdir() / name
    shutil.copytree(tiny_run(), destination)
    metadata_path = destination / "metadata.json"
    metadata_path.write_text(json.dumps({**json.loads(metadata_path.read_text()), "name": name}))
    return destination


@functools.cache
def calibrated_run() -> Path:
    """A copy of :func:`tiny_run` evaluated: its calibration.json has a temperature and operating points."""
    destination = _renamed_copy("calibrated")
    calibration = {**CALIBRATION, "operating_points": OPERATING_POINTS}
    (destination / "calibration.json").write_text(json.dumps(calibration))
    return destination


@functools.cache
def legacy_calibrated_run() -> Path:
    """A copy of :func:`tiny_run` evaluated by an older evaluate, which wrote into metadata.json."""
    destination = _renamed_copy("legacy")
    metadata_path = destination / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata.update(calibration=CALIBRATION, operating_points=OPERATING_POINTS)
    metadata_path.write_text(json.dumps(metadata))
    return destination


@functools.cache
def bare_saved_model() -> Path:
    """:func:`tiny_run`'s SavedModel copied out of its run directory: no metadata, no model.keras."""
    destination = _workdir() / "bare" / "saved_model"
    shutil.copytree(tiny_run() / "saved_model", destination)
    return destination


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


def stop_process(process: subprocess.Popen, grace_s: float = 15) -> None:
    """Terminate a server started by a test, killing it if it does not stop within ``grace_s``."""
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
