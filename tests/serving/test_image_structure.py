"""What the server reads from an upload's bytes before decoding: JPEG scans, truncated PNGs and GIFs."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from builders import (
    animated,
    assert_matches_openapi,
    encode,
    gradient,
    image_bytes,
    many_scan_jpeg,
    noise_image,
)
from PIL import Image

from aiclassify.serving.app import create_app
from aiclassify.serving.image_structure import gif_truncation, jpeg_scan_starts, png_truncation
from aiclassify.serving.state import serving_state


@pytest.fixture(scope="module")
def client(tiny_run):
    app = create_app({"models": {"faces": str(tiny_run)}, "background_loading": False})
    yield app.test_client()
    serving_state(app).registry.close()


def post(client, data: bytes):
    return client.post(
        "/predict", data={"file": (io.BytesIO(data), "upload")}, content_type="multipart/form-data"
    )


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- JPEG scans ----------------------------------------------------------------------------------


def test_scans_are_counted_as_decoders_see_them():
    assert len(jpeg_scan_starts(image_bytes("JPEG"))) == 1  # baseline: one interleaved scan
    assert len(jpeg_scan_starts(encode(gradient(), "JPEG", progressive=True))) == 10
    assert len(jpeg_scan_starts(encode(gradient(mode="L"), "JPEG", progressive=True))) == 6
    hostile = many_scan_jpeg(64, 64, 3000)
    starts = jpeg_scan_starts(hostile)
    assert len(starts) == 3010
    assert all(hostile[start : start + 2] == b"\xff\xda" for start in starts)
    assert starts == sorted(starts)


def test_scans_cannot_hide_behind_padding_garbage_or_thumbnails():
    data = encode(gradient(), "JPEG", progressive=True)
    second_scan = jpeg_scan_starts(data)[1]
    padded = data[:second_scan] + b"\xff\xff\xff" + data[second_scan:]  # fill bytes before a marker
    assert len(jpeg_scan_starts(padded)) == 10
    garbage = data[:second_scan] + b"junk" + data[second_scan:]  # libjpeg skips it with a warning
    assert len(jpeg_scan_starts(garbage)) == 10
    thumbnail = Image.new("RGB", (8, 8))
    exif = Image.Exif()
    with_thumbnail = encode(gradient(), "JPEG", exif=exif.tobytes() + encode(thumbnail, "JPEG"))
    assert len(jpeg_scan_starts(with_thumbnail)) == 1  # the bytes inside APP1 are skipped by length
    after_the_end = data + many_scan_jpeg(16, 16, 500)  # decoders stop at the first end of image
    assert len(jpeg_scan_starts(after_the_end)) == 10


def test_the_scan_walk_never_raises_on_malformed_data():
    data = many_scan_jpeg(32, 32, 20)
    rng = random.Random(7)
    for _ in range(300):
        cut = data[: rng.randrange(len(data))]
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] = rng.randrange(256)
        for sample in (cut, bytes(flipped), b"\xff\xd8" + rng.randbytes(200)):
            assert len(jpeg_scan_starts(sample)) <= 40
    assert jpeg_scan_starts(b"not a jpeg") == [] and jpeg_scan_starts(b"\xff\xd8\xff\xda") == []


# --- truncated PNG and GIF ---------------------------------------------------------------------------


def test_png_completeness():
    png = image_bytes("PNG")
    assert png.endswith(png_chunk(b"IEND", b""))
    assert png_truncation(png) is None
    assert png_truncation(png + b"trailing bytes after IEND") is None
    assert png_truncation(png[:-12]) == "it ends before its IEND chunk"
    assert png_truncation(png[:-4]) == "its 'IEND' chunk is cut short"  # IEND without its CRC
    assert "'IDAT' chunk is cut short" in png_truncation(png[: len(png) // 2])
    assert png_truncation(png[:8]) == "it ends before its IEND chunk"


def test_gif_completeness():
    for gif in (image_bytes("GIF"), animated("GIF"), noise_image("GIF")):
        assert gif.endswith(b"\x3b")
        assert gif_truncation(gif) is None
        assert gif_truncation(gif + b"trailing bytes") is None
        assert gif_truncation(gif[:-1]) == "it ends before its trailer"
        assert gif_truncation(gif[: len(gif) // 2]) is not None
    assert gif_truncation(b"GIF89a") == "it ends inside its header"
    gif = image_bytes("GIF")
    stray = gif[:-1] + b"\x00\x00" + gif[-1:]  # stray bytes between blocks are skipped, as Pillow does
    assert gif_truncation(stray) is None


TRUNCATED = {
    "png without IEND": lambda: image_bytes("PNG")[:-12],
    "png whose IEND has no CRC": lambda: image_bytes("PNG")[:-4],
    "gif without trailer": lambda: image_bytes("GIF")[:-1],
    "animated gif without trailer": lambda: animated("GIF")[:-1],
}


@pytest.mark.parametrize("name", list(TRUNCATED))
def test_truncated_png_and_gif_are_refused(client, name):
    data = TRUNCATED[name]()
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # Pillow alone accepts them: the server must check
    response = post(client, data)
    assert response.status_code == 422
    error = assert_matches_openapi(response, "/predict")["error"]
    assert "truncated" in error and ("PNG" in error or "GIF" in error)


COMPLETE = {
    "png": lambda: image_bytes("PNG"),
    "png with trailing bytes": lambda: image_bytes("PNG") + b"\x00" * 100,
    "gif": lambda: image_bytes("GIF"),
    "gif with trailing bytes": lambda: image_bytes("GIF") + b"more",
    "animated gif with trailing bytes": lambda: animated("GIF") + b"\x00",
    "jpeg with trailing bytes": lambda: image_bytes("JPEG") + b"tail",
}


@pytest.mark.parametrize("name", list(COMPLETE))
def test_complete_files_and_trailing_bytes_are_accepted(client, name):
    response = post(client, COMPLETE[name]())
    assert response.status_code == 200, response.get_json()
