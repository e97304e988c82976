"""From uploaded bytes to raw model probabilities: shared by ``/predict`` and the TF Serving API.

Everything that decodes happens in the request's own thread, within the request's decode budget
(:mod:`aiclassify.serving.decode_budget`): the request's pixels are counted from the headers first,
then each image is checked by Pillow (:mod:`aiclassify.serving.images`) and decoded into the model's
input (:meth:`aiclassify.predict.Predictor.prepare`). Only prepared inputs go to the model's shared
batching queue, so a costly image delays its own request and no other. The image warnings, when
asked for (``diagnose``), are read from the pixels Pillow decoded for its check.
"""

from __future__ import annotations

import base64
import binascii
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from aiclassify.serving.decode_budget import DecodeClock
from aiclassify.serving.errors import ApiError, shorten
from aiclassify.serving.images import (
    Diagnose,
    ImageLimits,
    PreparedImage,
    header_pixels,
    prepare_image,
)
from aiclassify.serving.registry import ServedModel


@dataclass(frozen=True)
class Upload:
    """One image as received: its bytes and, for a multipart upload, its filename."""

    data: bytes
    filename: str | None = None


@dataclass(frozen=True)
class Scored:
    """One image, prepared and scored."""

    image: PreparedImage
    probability: float  # raw model output
    preprocess_ms: float
    inference_ms: float


def decode_b64(text: str, where: str) -> bytes:
    """The bytes of base64 ``text`` (standard or URL-safe alphabet, padding optional); 400 if invalid."""
    text = "".join(text.split())
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, f"{where}: invalid base64 ({error})") from None


def describe_upload(index: int, upload: Upload, count: int) -> str:
    """How error messages start for an image: ``image 2 (cat.png): ``, nothing for a lone unnamed one."""
    name = f" ({shorten(upload.filename)})" if upload.filename else ""
    return f"image {index}{name}: " if count > 1 or name else ""


@contextmanager
def naming_the_upload(
    index: int, uploads: list[Upload], reasons: Collection[str] | None = None
) -> Iterator[None]:
    """Start the message of an :class:`ApiError` raised inside the block with the upload it is about
    (only of an error with one of ``reasons`` when given)."""
    try:
        yield
    except ApiError as error:
        if reasons is not None and error.reason not in reasons:
            raise
        where = describe_upload(index, uploads[index], len(uploads))
        raise ApiError(error.status, f"{where}{error.message}", reason=error.reason) from None


def check_request_pixels(uploads: list[Upload], limits: ImageLimits) -> None:
    """413 when the request's images have more pixels in all than the limit, read from their headers
    before any is decoded (an image over its own limits is left to its own 422)."""
    total = sum(header_pixels(upload.data, limits) for upload in uploads)
    if total > limits.max_request_pixels:
        message = (
            f"too many pixels in one request: {total} in all, limit {limits.max_request_pixels}; "
            "send fewer or smaller images"
        )
        raise ApiError(413, message, reason="request_too_many_pixels")


def prepare_all(
    uploads: list[Upload],
    limits: ImageLimits,
    clock: DecodeClock | None = None,
    diagnose: Diagnose | None = None,
) -> list[tuple[PreparedImage, float]]:
    """Validate and normalise every upload (with its preprocessing time in ms) within the request's
    decode budget (``clock``; by default a fresh one), or raise; ``diagnose`` as in
    :func:`~aiclassify.serving.images.prepare_image`."""
    clock = clock or DecodeClock(limits.decode_budget_s)
    check_request_pixels(uploads, limits)
    prepared = []
    for index, upload in enumerate(uploads):
        started = time.perf_counter()
        with naming_the_upload(index, uploads), clock.image(index):
            clock.check()
            image = prepare_image(upload.data, limits, clock=clock, diagnose=diagnose)
        prepared.append((image, (time.perf_counter() - started) * 1000))
    return prepared


def model_input(
    model: ServedModel, upload: Upload, image: PreparedImage, limits: ImageLimits, clock: DecodeClock
) -> tuple[PreparedImage, Any]:
    """The model's input for one checked upload, decoded in this thread, and the image it came from.

    Called inside ``clock.image(...)`` of this upload: the decode is not started when it would
    overrun the budget, reckoning that it costs what Pillow's check of the image did. An image
    passed on as uploaded that the model's decoder rejects is retried once as a normalised PNG; one
    that still fails is a 422.
    """
    clock.check(upcoming_s=clock.spent_on_current())
    try:
        return image, model.prepare(image.data)
    except Exception as error:
        if not is_input_error(error):
            raise
        if image.converted:
            raise ApiError(422, "the model could not decode this image", reason="undecodable") from error
    retried = prepare_image(upload.data, limits, force_png=True, clock=clock)
    image = replace(retried, warnings=image.warnings)
    try:
        return image, model.prepare(image.data)
    except Exception as error:
        if is_input_error(error):
            raise ApiError(422, "the model could not decode this image", reason="undecodable") from error
        raise


def is_input_error(error: BaseException) -> bool:
    """Whether the model rejected its input (TensorFlow's InvalidArgumentError, or a ValueError)."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.InvalidArgumentError):
        return True
    return isinstance(error, ValueError)


def score_uploads(
    model: ServedModel,
    uploads: list[Upload],
    limits: ImageLimits,
    timeout_s: float,
    observe_decode: Callable[[float], None] | None = None,
    clock: DecodeClock | None = None,
    diagnose: Diagnose | None = None,
) -> list[Scored]:
    """Prepare ``uploads`` in this thread within the decode budget (``clock``; by default a fresh
    one), then score them through ``model``'s batching queue. ``observe_decode`` is told each
    prepared image's check, decode and preparation time, in seconds; ``diagnose`` (the model's
    ``image_warnings``) reads each upload's warnings from its decoded pixels, kept in its ``image``.

    An image passed on as uploaded that the model's decoder rejects (while preparing it, or, for a
    model that decodes while it scores, in the batch) is retried once as a normalised PNG; one that
    still fails is a 422.
    """
    clock = clock or DecodeClock(limits.decode_budget_s)
    prepared = prepare_all(uploads, limits, clock, diagnose)
    inputs = []
    for index, (image, preprocess_ms) in enumerate(prepared):
        started = time.perf_counter()
        with naming_the_upload(index, uploads), clock.image(index):
            image, prepared_input = model_input(model, uploads[index], image, limits, clock)
        prepared[index] = (image, preprocess_ms + (time.perf_counter() - started) * 1000)
        inputs.append(prepared_input)
        if observe_decode is not None:
            observe_decode(prepared[index][1] / 1000)
    started = time.perf_counter()
    results = model.score(inputs, timeout_s)
    retry = [
        i
        for i, r in enumerate(results)
        if isinstance(r, Exception) and is_input_error(r) and not prepared[i][0].converted
    ]
    if retry:
        converted = []
        for i in retry:
            with naming_the_upload(i, uploads), clock.image(i):
                image = prepare_image(uploads[i].data, limits, force_png=True, clock=clock)
                converted.append(replace(image, warnings=prepared[i][0].warnings))
        rescored = model.score([model.prepare(c.data) for c in converted], timeout_s)
        for i, image, result in zip(retry, converted, rescored, strict=True):
            prepared[i] = (image, prepared[i][1])
            results[i] = result
    inference_ms = (time.perf_counter() - started) * 1000
    scored = []
    for index, ((image, preprocess_ms), result) in enumerate(zip(prepared, results, strict=True)):
        if isinstance(result, Exception):
            if is_input_error(result):
                where = describe_upload(index, uploads[index], len(uploads))
                raise ApiError(422, f"{where}the model could not decode this image") from result
            raise result
        scored.append(Scored(image, result, preprocess_ms, inference_ms))
    return scored
