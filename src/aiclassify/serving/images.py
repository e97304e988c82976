"""Check uploaded images with Pillow and hand the model bytes its own decoder reads as intended.

The model's ``serving_default`` signature decodes and resizes (``aiclassify.preprocessing``), so
the server never resizes. Pillow only validates, reads the size from the header (rejecting
decompression bombs before any pixel is decoded) and normalises what the TensorFlow decoder
would get wrong: EXIF rotation, CMYK, 16-bit, alpha, palettes and animations. An image that needs
none of that is passed on byte for byte; any other is re-encoded losslessly as PNG.

Before decoding, the bytes alone must pass the decode budget's first limits: pixels and sides
(from the header), the number of scans of a JPEG, and a complete PNG or GIF (a truncated one is
refused: :mod:`aiclassify.serving.image_structure`). While Pillow decodes, it reads through a
:class:`~aiclassify.serving.decode_budget.BudgetedReader` that checks the request's decode clock
(:func:`pace_decoding`: a JPEG one scan per read; a WebP, decoded in one call, is estimated first).
What else the server reads from the pixels (the image warnings) is computed from the image Pillow
decoded here (``diagnose``), never from a second decode.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from aiclassify import DECODABLE_FORMATS
from aiclassify.serving.decode_budget import BudgetedReader, DecodeClock
from aiclassify.serving.errors import ApiError
from aiclassify.serving.image_structure import gif_truncation, jpeg_scan_starts, png_truncation
from aiclassify.serving.webp_cost import measured_rates, webp_decode_estimate

if TYPE_CHECKING:
    from aiclassify.predict.diagnostics import ImageWarning

Diagnose = Callable[[Image.Image], "tuple[ImageWarning, ...]"]

PASSTHROUGH_FORMATS = DECODABLE_FORMATS
JPEG_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: its first frame is a JPEG, the one decoded
TRUNCATION_CHECKS = {"PNG": png_truncation, "GIF": gif_truncation}  # a truncated JPEG fails its decode
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
    warnings: tuple[ImageWarning, ...] = ()  # what ``diagnose`` found in the decoded upload


@dataclass(frozen=True)
class ImageLimits:
    """Largest image accepted, checked from the header before decoding, and the decode budget:
    scans of one JPEG and pixels of one request (both checked before decoding), CPU seconds of
    decoding for one request (checked while decoding)."""

    max_pixels: int = 40_000_000
    max_side: int = 16_384
    max_jpeg_scans: int = 100
    max_request_pixels: int = 200_000_000
    decode_budget_s: float = 10.0


def configure_pillow(limits: ImageLimits) -> None:
    """Set Pillow's decompression-bomb limit deliberately, and measure this machine's WebP decode
    rates now rather than in a request (:func:`~aiclassify.serving.webp_cost.measured_rates`).

    Pillow refuses to open images over twice this many pixels and warns above it;
    :func:`check_dimensions` rejects everything above it before any pixel is decoded.
    """
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    if features.check("webp"):  # without it, Pillow opens no WebP: nothing to estimate
        measured_rates()


def prepare_image(
    raw: bytes,
    limits: ImageLimits,
    force_png: bool = False,
    clock: DecodeClock | None = None,
    diagnose: Diagnose | None = None,
) -> PreparedImage:
    """Validate ``raw`` and return what to feed the model, or raise :class:`ApiError`.

    400: empty; 422: not an image, truncated, corrupt, too large or with too many JPEG scans, or
    alone over the decode budget; 413: the request's decode budget (``clock``: the request's; by
    default one for this image alone) ran out; 415: an image in a format the model does not serve
    (TIFF, ICO, PSD...) or an unusable colour mode. ``diagnose`` (a model's ``image_warnings``) is
    given the decoded image, within the budget; what it returns is the result's ``warnings``.
    """
    if not raw:
        raise ApiError(400, "the uploaded file is empty", reason="empty_file")
    if clock is None:  # a budget for this image alone
        clock = DecodeClock(limits.decode_budget_s)
        with clock.image(0):
            return prepare_image(raw, limits, force_png, clock, diagnose)
    reader = BudgetedReader(raw, clock)
    try:
        with Image.open(reader) as image:  # reads the header only
            return _prepare_open_image(image, raw, limits, force_png, reader, diagnose)
    except ApiError:
        raise
    except UnidentifiedImageError:
        message = "not an image: the data is not in any known image format"
        raise ApiError(422, message, reason="not_an_image") from None
    except Image.DecompressionBombError as error:  # over twice the limit: Pillow refuses to open it
        raise ApiError(422, f"image too large: {error}", reason="image_too_large") from None
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        message = f"could not decode the image: {error or type(error).__name__}"
        raise ApiError(422, message, reason="corrupt_image") from None


def _prepare_open_image(
    image: Image.Image,
    raw: bytes,
    limits: ImageLimits,
    force_png: bool,
    reader: BudgetedReader,
    diagnose: Diagnose | None,
) -> PreparedImage:
    """Checks on an opened (not yet decoded) image, then a full decode and normalisation."""
    image_format = image.format or "unknown"
    if image_format not in PASSTHROUGH_FORMATS:
        message = f"unsupported image format {image_format}; send JPEG, PNG, WebP, BMP or GIF"
        raise ApiError(415, message, reason="unsupported_format")
    width, height = image.size
    check_dimensions(width, height, limits)
    check_complete(raw, image_format)
    scans = jpeg_scan_starts(raw) if image_format in JPEG_FORMATS else None
    if scans is not None:
        check_jpeg_scans(len(scans), limits)
    pace_decoding(image, raw, reader, scans)
    image.load()  # full decode: truncated or corrupt data fails here
    reader.pace(())
    warnings = tuple(diagnose(image)) if diagnose is not None else ()
    reader.clock.check()
    if not force_png and _can_pass_through(image):
        return PreparedImage(raw, width, height, image_format, converted=False, warnings=warnings)
    png = encode_png(normalise(image))
    reader.clock.check()
    return PreparedImage(png, width, height, image_format, converted=True, warnings=warnings)


def pace_decoding(
    image: Image.Image, raw: bytes, reader: BudgetedReader, scans: list[int] | None = None
) -> None:
    """Get ``image``, opened from ``raw`` through ``reader`` and not yet decoded, ready to decode within
    ``reader``'s clock: a JPEG's decoder is handed one scan per read (``scans``, its scan starts: found
    when not given), so the clock is checked between scans; a WebP, which libwebp decodes in one call
    the clock cannot interrupt, is not started when its estimated cost
    (:func:`~aiclassify.serving.webp_cost.webp_decode_estimate`) is more than what is left.

    Call right before decoding: the pacing lasts until ``reader.pace(())``.
    """
    if image.format in JPEG_FORMATS:
        reader.pace(jpeg_scan_starts(raw) if scans is None else scans)
    elif image.format == "WEBP":
        width, height = image.size
        reader.clock.check(upcoming_s=webp_decode_estimate(width, height, len(raw)))


def check_complete(raw: bytes, image_format: str) -> None:
    """Reject a PNG that ends before its ``IEND`` chunk and a GIF that ends before its trailer (bytes
    after them are allowed): a detector must not score part of a file."""
    truncation = TRUNCATION_CHECKS.get(image_format)
    problem = truncation(raw) if truncation is not None else None
    if problem:
        message = f"could not decode the image: the {image_format} file is truncated ({problem})"
        raise ApiError(422, message, reason="truncated_image")


def check_jpeg_scans(scans: int, limits: ImageLimits) -> None:
    """Reject a JPEG with more scans than the limit: each scan is one more pass over the whole image."""
    if scans > limits.max_jpeg_scans:
        message = (
            f"too many JPEG scans: {scans}, limit {limits.max_jpeg_scans} (a progressive JPEG usually "
            "has about 10); re-encode the image"
        )
        raise ApiError(422, message, reason="too_many_jpeg_scans")


def header_pixels(raw: bytes, limits: ImageLimits) -> int:
    """Width x height from the header of an image within the per-image size limits; 0 for any other
    upload (its own checks reject it)."""
    try:
        with Image.open(io.BytesIO(raw)) as image:  # header only
            width, height = image.size
            check_dimensions(width, height, limits)
    except Exception:  # not an image, a bomb, too large...: prepare_image says why
        return 0
    return width * height


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Reject empty and absurd sizes read from the image header."""
    if width <= 0 or height <= 0:
        raise ApiError(422, f"image has no pixels ({width}x{height})", reason="no_pixels")
    if width > limits.max_side or height > limits.max_side:
        message = f"image too large: {width}x{height}, limit {limits.max_side} pixels a side"
        raise ApiError(422, message, reason="image_too_large")
    if width * height > limits.max_pixels:
        raise ApiError(
            422,
            f"image too large: {width}x{height} = {width * height} pixels, limit {limits.max_pixels}",
            reason="image_too_large",
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
        message = f"unsupported colour mode {image.mode}: {error}"
        raise ApiError(415, message, reason="unsupported_mode") from None


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
