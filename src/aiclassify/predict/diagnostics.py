"""Warnings that make a verdict on one image unreliable, computed from its encoded bytes with Pillow.

No TensorFlow, and bounded work: the size and the JPEG quantization tables come from the image
header; only the grayscale and transparency checks look at pixels, on a thumbnail of at most
:data:`THUMBNAIL_SIDE` pixels a side (a JPEG is decoded at 1/8 scale for it, with Pillow's
``draft``), and only when the colour mode does not already answer them. Given an image Pillow has
already decoded (the server's, from its own checks), they decode nothing again. A file Pillow cannot
read, or a check that fails on a truncated file, gives no warning: diagnostics never raise.

Codes (each warning is ``{code, message}``):

- ``larger_than_training``: the shorter side is more than :data:`LARGER_FACTOR` times the model's
  input size N; the model judges it on a few NxN crops covering a small part of it (the crop rule
  of :mod:`aiclassify.predict.crops`), or, without that rule, shrunk to NxN, losing the fine detail
  it relies on;
- ``smaller_than_training``: the shorter side is below the model's input size; it is enlarged;
- ``low_jpeg_quality``: the JPEG quality estimated from the luminance quantization table
  (:func:`estimate_jpeg_quality`) is below :data:`MIN_JPEG_QUALITY`, the floor of the training
  data's range (the demo data is saved at quality 88-96; the Kaggle datasets' JPEGs are of high
  quality too);
- ``grayscale``: a greyscale mode, or colour channels equal within :data:`GRAY_TOLERANCE`;
- ``mostly_transparent``: more than half the pixels have alpha below :data:`TRANSPARENT_ALPHA`
  (the model never sees transparency: it is dropped before scoring);
- ``demo_model``: not about the image: added by the predictor to every verdict of a demo model.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

LARGER_FACTOR = 4
MIN_JPEG_QUALITY = 60
GRAY_TOLERANCE = 8  # largest channel spread (0-255) of any thumbnail pixel of a "greyscale" image
TRANSPARENT_ALPHA = 10
TRANSPARENT_SHARE = 0.5
THUMBNAIL_SIDE = 64

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

# The IJG (libjpeg) standard luminance quantization table, ITU-T T.81 Annex K.1, in natural
# (row-major) order, the order of Pillow's ``image.quantization``.
IJG_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
).ravel()

WARNING_CODES = (
    "larger_than_training",
    "smaller_than_training",
    "low_jpeg_quality",
    "grayscale",
    "mostly_transparent",
    "demo_model",
)


@dataclass(frozen=True)
class ImageWarning:
    """Something that makes the verdict on an image unreliable."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """``{"code": ..., "message": ...}``."""
        return asdict(self)


DEMO_MODEL = ImageWarning(
    "demo_model", "demo model: trained on synthetic toy images, it detects nothing real"
)


def ijg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes at ``quality`` (1-100): the standard table scaled, baseline."""
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((IJG_LUMINANCE * scale + 50) // 100, 1, 255)


_IJG_TABLES = np.stack([ijg_table(q) for q in range(1, 101)])


def estimate_jpeg_quality(image: Image.Image) -> int | None:
    """The JPEG quality (1-100) whose IJG luminance table is closest to ``image``'s; None if not a JPEG.

    Exact for files written by libjpeg at an integer quality (Pillow, most software); for other
    encoders (cameras, Photoshop) the quality of the nearest IJG table, an estimate. Reads only
    the quantization tables Pillow parsed from the header.
    """
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    try:
        luminance = np.asarray(tables[0] if 0 in tables else tables[min(tables)], dtype=np.int64).ravel()
    except (TypeError, ValueError):
        return None
    if luminance.size != IJG_LUMINANCE.size:
        return None
    errors = np.abs(_IJG_TABLES - luminance).sum(axis=1)
    return int(np.flatnonzero(errors == errors.min())[-1]) + 1  # ties: the highest quality


def image_warnings(
    data: bytes | Image.Image, image_size: int | None, min_jpeg_quality: int = MIN_JPEG_QUALITY
) -> list[ImageWarning]:
    """The warnings for an image scored by a model of ``image_size`` (None: unknown): ``data`` is its
    encoded bytes, or the image as Pillow opened and decoded them (``load()``; read, not changed).

    Never raises: an unreadable file, or a check that fails on it, gives no warning.
    """
    try:
        if isinstance(data, Image.Image):
            return _warnings(data, image_size, min_jpeg_quality)
        with Image.open(io.BytesIO(data)) as image:
            return _warnings(image, image_size, min_jpeg_quality)
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        logger.debug("No diagnostics for this image: %s", error)
        return []


def _warnings(image: Image.Image, image_size: int | None, min_jpeg_quality: int) -> list[ImageWarning]:
    warnings = _size_warnings(*image.size, image_size)
    quality = estimate_jpeg_quality(image)
    if quality is not None and quality < min_jpeg_quality:
        warnings.append(
            ImageWarning(
                "low_jpeg_quality",
                f"JPEG quality about {quality} (estimated from its quantization tables), below "
                f"{min_jpeg_quality}, the lowest of the training data: compression artefacts can hide "
                "or imitate the traces the model looks for",
            )
        )
    try:
        warnings += _pixel_warnings(image)
    except Exception as error:  # a truncated or corrupt file: no pixel warnings
        logger.debug("No pixel diagnostics for this image: %s", error)
    return warnings


def _size_warnings(width: int, height: int, image_size: int | None) -> list[ImageWarning]:
    if not image_size or width <= 0 or height <= 0:
        return []
    side, size = min(width, height), f"{image_size}x{image_size}"
    if side > LARGER_FACTOR * image_size:
        crops = _crops(width, height, image_size)
        if crops:
            how = (
                f"the model judges it on {crops} native-resolution {size} crops, which cover only "
                f"{crops * image_size * image_size / (width * height):.0%} of it"
            )
        else:
            how = f"it is shrunk to {size}, which erases most of the fine detail the model relies on"
        return [
            ImageWarning(
                "larger_than_training",
                f"the image ({width}x{height}) is much larger than the model's {size} input: {how}",
            )
        ]
    if side < image_size:
        return [
            ImageWarning(
                "smaller_than_training",
                f"the image ({width}x{height}) is smaller than the model's {size} input: it is "
                f"enlarged to {size}, and the interpolation adds a smoothness the model did not see "
                "in training",
            )
        ]
    return []


def _crops(width: int, height: int, image_size: int) -> int:
    """How many crops the predictor's crop rule scores this image on (0: it is shrunk whole)."""
    try:
        from aiclassify.predict.crops import crop_offsets
    except ImportError:  # no crop rule: the exported signature shrinks every image
        return 0
    return len(crop_offsets(height, width, image_size))


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ALPHA_MODES or "transparency" in image.info


def _pixel_warnings(image: Image.Image) -> list[ImageWarning]:
    """Grayscale and transparency, from a thumbnail (decoded only when the mode does not tell)."""
    gray_by_mode = image.mode in GRAY_MODES
    alpha = _has_alpha(image)
    if gray_by_mode and not alpha:
        return [_grayscale()]
    thumbnail = _thumbnail(image)
    warnings = []
    if gray_by_mode or _channels_equal(thumbnail):
        warnings.append(_grayscale())
    if alpha:
        share = float(np.mean(np.asarray(thumbnail.convert("RGBA").getchannel("A")) < TRANSPARENT_ALPHA))
        if share > TRANSPARENT_SHARE:
            warnings.append(
                ImageWarning(
                    "mostly_transparent",
                    f"{share:.0%} of the image is (almost) fully transparent: the model ignores "
                    "transparency and judges the hidden colours underneath",
                )
            )
    return warnings


def _grayscale() -> ImageWarning:
    return ImageWarning(
        "grayscale",
        "greyscale image: the model was trained on colour images, and colour traces count in its verdict",
    )


def _thumbnail(image: Image.Image) -> Image.Image:
    """At most THUMBNAIL_SIDE a side; a JPEG not yet decoded is decoded at 1/8 scale (DCT scaling)
    first; a large image is reduced to a copy at most twice that size before, never copied whole."""
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (1, 1))  # the smallest scale libjpeg offers: 1/8 (none once decoded)
    # palettes and colour-key transparency are resolved at full size (resampling would break them)
    needs_rgba = image.mode in ("P", "PA") or "transparency" in image.info
    source = image.convert("RGBA") if needs_rgba else image
    factor = max(source.size) // (2 * THUMBNAIL_SIDE)
    reducible = factor > 1 and source.mode not in ("1", "P")  # as resize(), which samples those two
    thumbnail = source.reduce(factor) if reducible else source.copy()
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return thumbnail


def _channels_equal(thumbnail: Image.Image) -> bool:
    rgb = np.asarray(thumbnail.convert("RGB"), dtype=np.int16)
    if rgb.size == 0:
        return False
    return int((rgb.max(axis=-1) - rgb.min(axis=-1)).max()) <= GRAY_TOLERANCE


def warnings_as_dicts(warnings: list[ImageWarning] | tuple[ImageWarning, ...]) -> list[dict[str, Any]]:
    """The warnings as JSON objects."""
    return [warning.to_dict() for warning in warnings]
