"""Check uploaded images with Pillow and hand the model bytes its own decoder reads as intended.

The model's ``serving_default`` signature decodes and resizes (``aiclassify.preprocessing``), so
the server never resizes. Pillow only validates, reads the size from the header (rejecting
decompression bombs before any pixel is decoded) and normalises what the TensorFlow decoder
would get wrong: EXIF rotation, CMYK, 16-bit, alpha, palettes and animations. An image that needs
none of that is passed on byte for byte; any other is re-encoded losslessly as PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aiclassify import DECODABLE_FORMATS
from aiclassify.serving.errors import ApiError

PASSTHROUGH_FORMATS = DECODABLE_FORMATS
PASSTHROUGH_MODES = frozenset({"RGB", "L"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class PreparedImage:
    """Bytes for the model's decoder, and what the upload was."""

    data: bytes
    width: int
    height: int
    format: str
    converted: bool  # True when ``data`` is a re-encoded PNG rather than the upload


@dataclass(frozen=True)
class ImageLimits:
    """Largest image accepted, checked from the header before decoding."""

    max_pixels: int = 40_000_000
    max_side: int = 16_384


def configure_pillow(limits: ImageLimits) -> None:
    """Set Pillow's decompression-bomb limit deliberately.

    Pillow refuses to open images over twice this many pixels and warns above it;
    :func:`check_dimensions` rejects everything above it before any pixel is decoded.
    """
    Image.MAX_IMAGE_PIXELS = limits.max_pixels


def prepare_image(raw: bytes, limits: ImageLimits, force_png: bool = False) -> PreparedImage:
    """Validate ``raw`` and return what to feed the model, or raise :class:`ApiError`.

    400: empty; 422: not an image, truncated, corrupt or too large; 415: an image in a format
    the model does not serve (TIFF, ICO, PSD...) or an unusable colour mode.
    """
    if not raw:
        raise ApiError(400, "the uploaded file is empty")
    try:
        with Image.open(io.BytesIO(raw)) as image:  # reads the header only
            return _prepare_open_image(image, raw, limits, force_png)
    except ApiError:
        raise
    except UnidentifiedImageError:
        raise ApiError(422, "not an image: the data is not in any known image format") from None
    except Image.DecompressionBombError as error:  # over twice the limit: Pillow refuses to open it
        raise ApiError(422, f"image too large: {error}") from None
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise ApiError(422, f"could not decode the image: {error or type(error).__name__}") from None


def _prepare_open_image(
    image: Image.Image, raw: bytes, limits: ImageLimits, force_png: bool
) -> PreparedImage:
    """Checks on an opened (not yet decoded) image, then a full decode and normalisation."""
    image_format = image.format or "unknown"
    if image_format not in PASSTHROUGH_FORMATS:
        raise ApiError(415, f"unsupported image format {image_format}; send JPEG, PNG, WebP, BMP or GIF")
    width, height = image.size
    check_dimensions(width, height, limits)
    image.load()  # full decode: truncated or corrupt data fails here
    if not force_png and _can_pass_through(image):
        return PreparedImage(raw, width, height, image_format, converted=False)
    png = encode_png(normalise(image))
    return PreparedImage(png, width, height, image_format, converted=True)


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Reject empty and absurd sizes read from the image header."""
    if width <= 0 or height <= 0:
        raise ApiError(422, f"image has no pixels ({width}x{height})")
    if width > limits.max_side or height > limits.max_side:
        raise ApiError(422, f"image too large: {width}x{height}, limit {limits.max_side} pixels a side")
    if width * height > limits.max_pixels:
        raise ApiError(
            422, f"image too large: {width}x{height} = {width * height} pixels, limit {limits.max_pixels}"
        )


def _can_pass_through(image: Image.Image) -> bool:
    """Whether the TensorFlow decoder reads ``image``'s bytes exactly as Pillow sees them."""
    return (
        image.mode in PASSTHROUGH_MODES
        and getattr(image, "n_frames", 1) == 1
        and image.getexif().get(EXIF_ORIENTATION, 1) == 1
    )


def normalise(image: Image.Image) -> Image.Image:
    """First frame, EXIF orientation applied, as 8-bit RGB (alpha dropped, as the model decoder does)."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        image = _to_eight_bit(image)
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ApiError(415, f"unsupported colour mode {image.mode}: {error}") from None


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """A 16/32-bit or float grey image as 8-bit grey (16-bit ranges scaled down, like TensorFlow)."""
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode != "F" and pixels.size and pixels.max() > 255:
        pixels = pixels / 257.0
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


def encode_png(image: Image.Image) -> bytes:
    """Lossless, quickly compressed PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
