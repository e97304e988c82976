"""From uploaded bytes to raw model probabilities: shared by ``/predict`` and the TF Serving API."""

from __future__ import annotations

import base64
import binascii
import sys
import time
from dataclasses import dataclass

from aiclassify.serving.errors import ApiError
from aiclassify.serving.images import ImageLimits, PreparedImage, prepare_image
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
    name = f" ({upload.filename})" if upload.filename else ""
    return f"image {index}{name}: " if count > 1 or name else ""


def prepare_all(uploads: list[Upload], limits: ImageLimits) -> list[tuple[PreparedImage, float]]:
    """Validate and normalise every upload (with its preprocessing time in ms), or raise."""
    prepared = []
    for index, upload in enumerate(uploads):
        started = time.perf_counter()
        try:
            image = prepare_image(upload.data, limits)
        except ApiError as error:
            where = describe_upload(index, upload, len(uploads))
            raise ApiError(error.status, f"{where}{error.message}") from None
        prepared.append((image, (time.perf_counter() - started) * 1000))
    return prepared


def is_input_error(error: BaseException) -> bool:
    """Whether the model rejected its input (TensorFlow's InvalidArgumentError, or a ValueError)."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.InvalidArgumentError):
        return True
    return isinstance(error, ValueError)


def score_uploads(
    model: ServedModel, uploads: list[Upload], limits: ImageLimits, timeout_s: float
) -> list[Scored]:
    """Prepare and score ``uploads`` through ``model``'s batching queue.

    An image passed on as uploaded that the model's decoder rejects is retried once as a
    normalised PNG; one that still fails is a 422.
    """
    prepared = prepare_all(uploads, limits)
    started = time.perf_counter()
    results = model.score([image.data for image, _ in prepared], timeout_s)
    retry = [
        i
        for i, r in enumerate(results)
        if isinstance(r, Exception) and is_input_error(r) and not prepared[i][0].converted
    ]
    if retry:
        converted = [prepare_image(uploads[i].data, limits, force_png=True) for i in retry]
        rescored = model.score([c.data for c in converted], timeout_s)
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
