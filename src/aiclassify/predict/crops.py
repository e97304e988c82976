"""Crop scoring of large images at inference.

The exported ``serving_default`` signature resizes a whole image to the model's input size, and
a photograph many times that size loses, in the shrinking, the fine traces a detector looks at.
So the scorers the :class:`~aiclassify.predict.Predictor` builds (for the predict command, the
API and evaluation) follow one rule:

- an image whose **shorter side is at least** :data:`CROP_FACTOR` **x the model's input size** is
  decoded with :func:`aiclassify.preprocessing.decode_rgb` (uint8 RGB, first frame, exactly as the
  signature decodes it) and scored on up to :data:`MAX_CROPS` (9) crops of input size at native
  resolution, on an even grid: along each side ``min(3, side // input size)`` cells (so 3 x 3 when
  the image is at least three input sizes on both sides, 2 x 2 at the threshold), one crop at the
  centre of each cell. The crops of an image are scored in one call of the ``serve_pixels``
  signature (float32 0-255 pixels) and combined as the **mean of their logits**;
- every other image is scored through ``serving_default`` on its bytes, exactly as before.

Why the mean logit: it is the crops' average evidence on the model's own log-odds scale, so one
odd crop (a patch of sky, a saturated highlight) moves the verdict by its share without deciding
it alone, and a confident crop is not flattened as it is in a mean of probabilities. Not the
maximum: with nine crops, the max flags an image whenever any one crop looks generated, which
multiplies the false accusations of real photographs, the worst error this product can make.

The decision reads the image's dimensions from its header with Pillow (no decoding); an image
Pillow cannot size goes through ``serving_default``, which decodes or rejects it as before. The
rule is inference behaviour: training and the exported signatures do not change, and the rule is
recorded nowhere in the run directory.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from aiclassify.calibration import logit, sigmoid

CROP_FACTOR = 2
"""An image is scored on crops when its shorter side is at least this many input sizes."""
GRID = 3
"""At most this many crops along each side."""
MAX_CROPS = GRID * GRID
"""At most this many crops per image."""
CROPS_PER_CALL = 8 * MAX_CROPS
"""At most this many crops per ``serve_pixels`` call (the crops of one image are never split)."""

BytesScorer = Callable[[list[bytes]], Sequence[float]]
PixelScorer = Callable[[np.ndarray], Sequence[float]]


def uses_crops(height: int, width: int, image_size: int) -> bool:
    """Whether an image of this size is scored on crops."""
    return min(height, width) >= CROP_FACTOR * image_size


def crop_offsets(height: int, width: int, image_size: int) -> list[tuple[int, int]]:
    """The (top, left) corners of an image's crops, row by row; empty when it is not cropped.

    Along each side, ``min(GRID, side // image_size)`` equal cells, one crop centred in each.
    """
    if not uses_crops(height, width, image_size):
        return []

    def starts(side: int) -> list[int]:
        cells = min(GRID, side // image_size)
        return [
            min(max((2 * i + 1) * side // (2 * cells) - image_size // 2, 0), side - image_size)
            for i in range(cells)
        ]

    return [(top, left) for top in starts(height) for left in starts(width)]


def header_size(image: bytes) -> tuple[int, int] | None:
    """(height, width) from the image's header, or None when Pillow cannot tell."""
    from PIL import Image

    try:  # header only: Pillow decodes nothing until asked for pixels
        with Image.open(io.BytesIO(image)) as opened:
            width, height = opened.size
    except Exception:  # not an image Pillow knows, or too large to open: serving_default decides
        return None
    return int(height), int(width)


def decode(image: bytes) -> np.ndarray:
    """The image as (height, width, 3) uint8 RGB, decoded exactly as the exported signature does."""
    import tensorflow as tf

    from aiclassify.preprocessing import decode_rgb

    return decode_rgb(tf.constant(image, dtype=tf.string)).numpy()


def crops(pixels: np.ndarray, image_size: int) -> np.ndarray:
    """The crops of a decoded image, (n, image_size, image_size, 3) in :func:`crop_offsets` order."""
    height, width = pixels.shape[:2]
    return np.stack(
        [
            pixels[top : top + image_size, left : left + image_size]
            for top, left in crop_offsets(height, width, image_size)
        ]
    )


def combine(probabilities: Sequence[float]) -> float:
    """One probability from the crops': the sigmoid of the mean of their logits."""
    return float(sigmoid(np.mean(logit(np.asarray(probabilities, dtype=np.float64)))))


def crop_scorer(score_bytes: BytesScorer, score_pixels: PixelScorer, image_size: int) -> BytesScorer:
    """A score function (encoded images in, P(AI-generated) out) applying the crop rule.

    ``score_bytes`` scores encoded images as the exported ``serving_default`` does;
    ``score_pixels`` scores a float32 0-255 batch of ``image_size`` squares.
    """

    def score(images: list[bytes]) -> np.ndarray:
        result = np.zeros(len(images), dtype=np.float32)
        whole, cropped = [], []
        for index, image in enumerate(images):
            size = header_size(image)
            if size is not None and uses_crops(*size, image_size):
                pixels = decode(image)
                if uses_crops(*pixels.shape[:2], image_size):
                    cropped.append((index, crops(pixels, image_size)))
                    continue
            whole.append(index)
        if whole:
            scores = np.asarray(score_bytes([images[i] for i in whole]), dtype=np.float32).reshape(-1)
            result[whole] = scores
        for group in _calls(cropped):
            batch = np.concatenate([image_crops for _, image_crops in group]).astype(np.float32)
            scores = np.asarray(score_pixels(batch), dtype=np.float64).reshape(-1)
            start = 0
            for index, image_crops in group:
                result[index] = combine(scores[start : start + len(image_crops)])
                start += len(image_crops)
        return result

    return score


def _calls(cropped: list[tuple[int, np.ndarray]]) -> list[list[tuple[int, np.ndarray]]]:
    """Images' crops grouped into calls of at most :data:`CROPS_PER_CALL` crops."""
    groups: list[list[tuple[int, np.ndarray]]] = []
    count = CROPS_PER_CALL
    for item in cropped:
        if count + len(item[1]) > CROPS_PER_CALL:
            groups.append([])
            count = 0
        groups[-1].append(item)
        count += len(item[1])
    return groups


def saved_model_crop_scorer(path: Path) -> BytesScorer:
    """Score encoded images with a SavedModel: ``serving_default`` on the bytes of most images,
    ``serve_pixels`` on the crops of large ones (the module's rule). The input size is read from
    the ``serve_pixels`` signature; a SavedModel without one is scored on bytes only."""
    import tensorflow as tf

    from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, PIXELS_SIGNATURE, load_saved_model

    loaded = load_saved_model(path)
    serve = loaded.signatures[BYTES_SIGNATURE]

    def score_bytes(images: list[bytes]) -> np.ndarray:
        return serve(image_bytes=tf.constant(images, dtype=tf.string))[OUTPUT_KEY].numpy()

    if PIXELS_SIGNATURE not in loaded.signatures:
        return score_bytes
    serve_pixels = loaded.signatures[PIXELS_SIGNATURE]
    image_size = int(serve_pixels.structured_input_signature[1]["pixels"].shape[1])

    def score_pixels(pixels: np.ndarray) -> np.ndarray:
        return serve_pixels(pixels=tf.constant(pixels, dtype=tf.float32))[OUTPUT_KEY].numpy()

    return crop_scorer(score_bytes, score_pixels, image_size)
