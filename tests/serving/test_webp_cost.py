"""The WebP decode estimate the decode budget checks before libwebp's uninterruptible call: linear in
the canvas's pixels and the file's bytes, with rates measured on this machine, and not below what
decoding the costliest kinds of WebP takes."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from builders import encode
from PIL import Image

from aiclassify.serving.webp_cost import WebPRates, measured_rates, webp_decode_estimate


def decode_s(data: bytes) -> float:
    """The CPU time of this thread to decode ``data``, the fastest of three decodes."""
    fastest = float("inf")
    for _ in range(3):
        started = time.thread_time()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        fastest = min(fastest, time.thread_time() - started)
    return fastest


def noise(side: int, mode: str) -> Image.Image:
    pixels = np.random.default_rng(1).integers(0, 256, (side, side, len(mode)), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


KINDS = {
    "flat lossy with alpha": lambda: encode(Image.new("RGBA", (1024, 768), (9, 99, 199, 100)), "WEBP"),
    "flat lossless": lambda: encode(Image.new("RGB", (1024, 768), (9, 99, 199)), "WEBP", lossless=True),
    "noise lossy at quality 100": lambda: encode(noise(512, "RGBA"), "WEBP", quality=100),
    "noise lossless": lambda: encode(noise(512, "RGBA"), "WEBP", lossless=True, method=0),
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_estimate_is_not_below_what_decoding_takes(kind):
    data = KINDS[kind]()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    estimate = webp_decode_estimate(width, height, len(data))
    assert estimate >= 0.5 * decode_s(data), kind  # from above, with room for a busy machine


def test_the_rates_are_measured_once_and_the_estimate_is_linear():
    rates = measured_rates()
    assert rates is measured_rates() and rates.per_pixel_s > 0 and rates.per_byte_s >= 0
    assert WebPRates(1e-8, 2e-8).estimate(100, 50, 1000) == pytest.approx(1e-8 * 5000 + 2e-8 * 1000)
    with pytest.raises(ValueError, match=r"Received: width=-1, height=5, size_bytes=10"):
        rates.estimate(-1, 5, 10)
