"""Warnings computed from an image's bytes (Pillow only): every code, the JPEG quality estimate, and
files that must never make diagnostics raise."""

from __future__ import annotations

import io

import numpy as np
import pytest
from builders import encode, noise_image, truncated
from conftest import assert_runs_without_tensorflow
from PIL import Image, ImageFile

from aiclassify.predict.diagnostics import (
    DEMO_MODEL,
    MIN_JPEG_QUALITY,
    WARNING_CODES,
    estimate_jpeg_quality,
    ijg_table,
    image_warnings,
)


def photo(size: tuple[int, int] = (64, 64), seed: int = 0) -> Image.Image:
    """Smooth colour content with some noise, like a small photo."""
    width, height = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.concatenate([200 * x + 0 * y, 180 * y + 0 * x, 120 * (1 - x) + 60 * y], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def codes(data: bytes, image_size: int | None = 64) -> list[str]:
    return [warning.code for warning in image_warnings(data, image_size)]


@pytest.mark.parametrize("image_size", [32, 64])
def test_a_plain_rgb_jpeg_gets_no_warning(image_size):
    assert image_warnings(encode(photo(), "JPEG", quality=90), image_size) == []


@pytest.mark.parametrize("quality", [30, 50, 75, 95])
def test_jpeg_quality_is_estimated_from_the_quantization_tables(quality):
    for image in (photo(), Image.fromarray(np.full((16, 16), 128, np.uint8))):  # colour and greyscale
        data = encode(image, "JPEG", quality=quality)
        estimate = estimate_jpeg_quality(Image.open(io.BytesIO(data)))
        assert estimate is not None and abs(estimate - quality) <= 5
        assert estimate == quality  # Pillow writes libjpeg's own tables: the estimate is exact


def test_jpeg_quality_of_non_ijg_tables_and_non_jpegs():
    # custom tables: the luminance table of quality 40 with every entry nudged
    table = [min(255, v + (i % 3) - 1) or 1 for i, v in enumerate(ijg_table(40).tolist())]
    data = encode(photo(), "JPEG", qtables=[table, table])
    assert abs(estimate_jpeg_quality(Image.open(io.BytesIO(data))) - 40) <= 5
    assert estimate_jpeg_quality(Image.open(io.BytesIO(encode(photo(), "PNG")))) is None


def test_low_jpeg_quality():
    assert codes(encode(photo(), "JPEG", quality=30)) == ["low_jpeg_quality"]
    [warning] = image_warnings(encode(photo(), "JPEG", quality=30), 64)
    assert "quality about 30" in warning.message and str(MIN_JPEG_QUALITY) in warning.message
    assert codes(encode(photo(), "JPEG", quality=MIN_JPEG_QUALITY)) == []


@pytest.mark.parametrize(
    ("size", "code", "words"),
    [
        ((300, 257), "larger_than_training", "larger than the model's 64x64 input"),  # 257 > 4 x 64
        ((256, 900), None, None),  # shorter side exactly 4 x 64: no warning
        ((40, 64), "smaller_than_training", "enlarged to 64x64"),
        ((64, 64), None, None),
    ],
)
def test_size_against_the_model_input(size, code, words):
    warnings = image_warnings(encode(photo(size), "PNG"), 64)
    assert [w.code for w in warnings] == ([code] if code else [])
    if words:
        assert words in warnings[0].message and f"{size[0]}x{size[1]}" in warnings[0].message
    assert image_warnings(encode(photo(size), "PNG"), None) == []  # unknown input size: no size check


def test_a_large_image_warning_says_how_it_is_scored():
    from aiclassify.predict import crops

    [warning] = image_warnings(encode(photo((640, 480)), "JPEG", quality=90), 64)
    count = len(crops.crop_offsets(480, 640, 64))
    assert count and f"on {count} native-resolution 64x64 crops" in warning.message
    assert f"cover only {count * 64 * 64 / (640 * 480):.0%} of it" in warning.message


def test_grayscale():
    grey = photo().convert("L")
    assert codes(encode(grey, "JPEG", quality=90)) == ["grayscale"]  # a one-channel JPEG
    assert codes(encode(grey.convert("RGB"), "JPEG", quality=90)) == ["grayscale"]  # grey pixels in RGB
    assert codes(encode(grey.convert("RGB"), "PNG")) == ["grayscale"]
    tinted = np.asarray(grey.convert("RGB")).copy()
    tinted[..., 0] = np.clip(tinted[..., 0].astype(int) + 40, 0, 255)
    assert codes(encode(Image.fromarray(tinted), "PNG")) == []


def test_mostly_transparent():
    image = photo().convert("RGBA")
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:, :40] = 3  # 62.5 % almost fully transparent
    image.putalpha(Image.fromarray(alpha))
    [warning] = image_warnings(encode(image, "PNG"), 64)
    assert warning.code == "mostly_transparent" and warning.message.startswith("62% of the image")
    alpha[:, :40], alpha[:, :20] = 255, 3  # 31 %: no warning
    image.putalpha(Image.fromarray(alpha))
    assert codes(encode(image, "PNG")) == []
    assert codes(encode(image, "WEBP", lossless=True)) == []
    palette = photo().convert("P")
    transparent = encode(palette, "PNG", transparency=palette.getpixel((0, 0)))
    assert "mostly_transparent" not in codes(transparent)


def test_every_code_can_be_raised_on_one_built_image():
    image = photo((20, 20)).convert("L").convert("RGBA")
    image.putalpha(0)
    found = codes(encode(image, "PNG"))
    assert found == ["smaller_than_training", "grayscale", "mostly_transparent"]
    found += codes(encode(photo((600, 600)), "JPEG", quality=20))
    assert set(found) | {DEMO_MODEL.code} == set(WARNING_CODES)


def transparent_photo(size: tuple[int, int] = (64, 64)) -> Image.Image:
    image = photo(size).convert("RGBA")
    image.putalpha(0)
    return image


@pytest.mark.parametrize(
    "data",
    [
        encode(photo((600, 600)), "JPEG", quality=20),  # large for 64, low quality
        encode(photo().convert("L").convert("RGB"), "JPEG", quality=90),  # grey pixels
        encode(transparent_photo((900, 700)), "PNG"),  # a large one, reduced for its thumbnail
        encode(photo().convert("L").convert("P"), "GIF"),  # a grey palette
        encode(transparent_photo(), "WEBP", lossless=True),
    ],
    ids=["low-quality-jpeg", "grey-jpeg", "transparent-png", "grey-gif", "transparent-webp"],
)
def test_a_decoded_image_gets_the_warnings_of_its_bytes_and_is_not_decoded_again(data, monkeypatch):
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        before = (image.size, image.mode, image.tobytes())
        decodes = []
        load = ImageFile.ImageFile.load
        monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decodes.append(im.tile) or load(im))
        warnings = image_warnings(image, 64)
        assert [tile for tile in decodes if tile] == []  # read, never decoded again
        assert (image.size, image.mode, image.tobytes()) == before  # nor changed
    monkeypatch.undo()
    assert warnings == image_warnings(data, 64) and warnings


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"junk" * 50,
        bytes(range(256)),
        truncated(encode(photo(), "JPEG", quality=90)),
        truncated(encode(photo(), "JPEG", quality=90), 0.05),
        truncated(noise_image("PNG")),
        truncated(noise_image("WEBP")),
        truncated(encode(photo().convert("RGBA"), "PNG"), 0.6),
    ],
)
def test_unreadable_and_truncated_files_never_raise_and_warn_of_nothing(data):
    assert image_warnings(data, 64) == []


def test_diagnostics_do_not_import_tensorflow(tmp_path):
    assert_runs_without_tensorflow("from aiclassify.predict import diagnostics, band", tmp_path)
