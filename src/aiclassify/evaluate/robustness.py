"""Robustness tiers: the same images re-encoded or degraded with Pillow before scoring.

Each tier maps encoded bytes to encoded bytes; the result goes through the run's own bytes
signature, so resizing to the model's input size happens exactly as in serving. Non-JPEG tiers
are saved as PNG so that only the named change is applied.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageFilter

CROP_FRACTION = 0.8  # centre crop keeps the central 80 % of width and height


def _open(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg(quality: int) -> Callable[[bytes], bytes]:
    """Re-encode as JPEG at ``quality``."""

    def transform(data: bytes) -> bytes:
        return _encode(_open(data), "JPEG", quality=quality)

    return transform


def downscale_half(data: bytes) -> bytes:
    """Downscale to half width and height (bicubic), then back to the original size."""
    image = _open(data)
    small = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.BICUBIC)
    return _encode(small.resize(image.size, Image.Resampling.BICUBIC), "PNG")


def gaussian_blur(data: bytes, sigma: float = 1.0) -> bytes:
    """Gaussian blur with standard deviation ``sigma`` pixels (Pillow's ``radius``)."""
    return _encode(_open(data).filter(ImageFilter.GaussianBlur(radius=sigma)), "PNG")


def centre_crop(data: bytes, fraction: float = CROP_FRACTION) -> bytes:
    """Keep the central ``fraction`` of width and height (the model resizes it back)."""
    image = _open(data)
    width, height = max(1, round(image.width * fraction)), max(1, round(image.height * fraction))
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return _encode(image.crop((left, top, left + width, top + height)), "PNG")


TIERS: dict[str, Callable[[bytes], bytes] | None] = {
    "clean": None,
    "jpeg_q90": jpeg(90),
    "jpeg_q75": jpeg(75),
    "jpeg_q50": jpeg(50),
    "downscale_half": downscale_half,
    "blur_sigma1": gaussian_blur,
    "centre_crop": centre_crop,
}
"""Tier name to transform (``None``: the original bytes)."""

TIER_LABELS = {
    "clean": "clean",
    "jpeg_q90": "JPEG q90",
    "jpeg_q75": "JPEG q75",
    "jpeg_q50": "JPEG q50",
    "downscale_half": "downscale x0.5 and back",
    "blur_sigma1": "Gaussian blur sigma 1",
    "centre_crop": f"centre crop {CROP_FRACTION:.0%}",
}
