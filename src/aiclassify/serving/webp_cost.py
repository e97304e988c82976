"""What decoding a WebP costs, estimated before libwebp's one call that nothing can interrupt.

Pillow hands a WebP frame to libwebp whole: no read, so no check of the decode budget, happens
while it is decoded (:mod:`aiclassify.serving.decode_budget` paces a JPEG one scan at a time; a WebP
cannot be paced). So the server estimates the decode's cost from above before starting it, and does
not start it when the estimate is more than what is left of the request's budget.

The estimate is linear in what the upload declares and holds: a cost per pixel of the canvas (from
the header) plus a cost per byte of the file. Both rates are measured once per process, on this
machine, as CPU time of decoding two reference WebPs built in memory: a flat lossy image with a
semi-transparent alpha plane (the costliest pixels when there is little data: some 10 ns each on
the development machine) and lossy noise at quality 100 (the densest data: some 30 ns a byte). Lossless
files cost less per byte, so they are overestimated (up to about 6 times for noise). Only the
first frame of an animated WebP is ever decoded (Pillow decodes frames in order, and the server
only loads the first), so the canvas is counted once.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

CALIBRATION_REPEATS = 5  # the fastest of these decodes is kept: the least disturbed by other threads
FLAT_SIDE = 512
DENSE_SIDE = 256


@dataclass(frozen=True)
class WebPRates:
    """CPU seconds libwebp takes per canvas pixel and per byte of file, on this machine."""

    per_pixel_s: float
    per_byte_s: float

    def estimate(self, width: int, height: int, size_bytes: int) -> float:
        """CPU seconds a WebP of this canvas and file size takes to decode, estimated from above."""
        if width < 0 or height < 0 or size_bytes < 0:
            raise ValueError(
                "a WebP's canvas and size cannot be negative. "
                f"Received: width={width}, height={height}, size_bytes={size_bytes}"
            )
        return self.per_pixel_s * width * height + self.per_byte_s * size_bytes


def _encode(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", **options)
    return buffer.getvalue()


def _decode_s(data: bytes) -> float:
    """The CPU time of this thread to decode ``data``, the fastest of a few decodes."""
    fastest = float("inf")
    for _ in range(CALIBRATION_REPEATS):
        started = time.thread_time()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        fastest = min(fastest, time.thread_time() - started)
    return fastest


@cache
def measured_rates() -> WebPRates:
    """This machine's rates, measured on the first call (some 0.1 s of CPU) and kept for the process."""
    flat = _encode(Image.new("RGBA", (FLAT_SIDE, FLAT_SIDE), (90, 100, 110, 128)), quality=90)
    pixels = np.random.default_rng(0).integers(0, 256, (DENSE_SIDE, DENSE_SIDE, 4), dtype=np.uint8)
    dense = _encode(Image.fromarray(pixels, "RGBA"), quality=100)
    per_pixel = _decode_s(flat) / (FLAT_SIDE * FLAT_SIDE)
    per_byte = max(_decode_s(dense) - per_pixel * DENSE_SIDE * DENSE_SIDE, 0.0) / len(dense)
    return WebPRates(per_pixel, per_byte)


def webp_decode_estimate(width: int, height: int, size_bytes: int) -> float:
    """CPU seconds decoding a WebP of this canvas and file size takes here, estimated from above
    with :func:`measured_rates`."""
    return measured_rates().estimate(width, height, size_bytes)
