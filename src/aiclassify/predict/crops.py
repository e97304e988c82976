"""The pixel path of inference: whole images resized, large ones scored on native crops.

The exported ``serving_default`` signature resizes a whole image to the model's input size, and
a photograph many times that size loses, in the shrinking, the fine traces a detector looks at.
So the scorer the :class:`~aiclassify.predict.Predictor` builds for a SavedModel with a
``serve_pixels`` signature or a Keras model (:class:`CropScorer`, for the predict command, the API
and evaluation) follows one rule. Every image is decoded with
:func:`aiclassify.preprocessing.decode_rgb` (uint8 RGB, first frame, exactly as the signature
decodes it), then, by its decoded size:

- an image whose **shorter side is at least** :data:`CROP_FACTOR` **x the model's input size** is
  scored on up to :data:`MAX_CROPS` (9) crops of input size at native resolution, on an even grid:
  along each side ``min(3, side // input size)`` cells (so 3 x 3 when the image is at least three
  input sizes on both sides, 2 x 2 at the threshold), one crop at the centre of each cell, combined
  as the **mean of their logits**;
- every other image is resized with :func:`aiclassify.preprocessing.resize_square`, as
  ``serving_default`` does, and scored as it is: ``serve_pixels`` on a batch of such squares gives,
  bit for bit, what ``serving_default`` gives on the same images' bytes.

A model trained on mirrored copies (``hflip`` in training's ``train.augment``, which
``metadata.json`` → ``augment`` records; :func:`mirrors_views`) is also scored on the **mirror
image of every square**, and all of an image's scores (its crops or its resized whole, each with
its mirror) are combined by the same mean logit: the model was taught that an image and its mirror
are the same evidence, so averaging the two removes some of its noise, at twice the cost (measured
in docs/results.md). Other models are scored on the squares alone.

Decoding and cutting (:meth:`CropScorer.prepare`) happen in the caller's thread; scoring
(:meth:`CropScorer.score`) sends the squares of many images to ``serve_pixels`` (float32 0-255
pixels) together, at most :data:`CROPS_PER_CALL` a call, never splitting an image's crops
(:mod:`aiclassify.predict.stages`). Preparing many images at once decodes those whose header
(read with Pillow, no decoding) says they are small in one TensorFlow call; the decision is still
the decoded size's, so one image prepared alone or among others gives the same number.

Why the mean logit: it is the crops' average evidence on the model's own log-odds scale, so one
odd crop (a patch of sky, a saturated highlight) moves the verdict by its share without deciding
it alone, and a confident crop is not flattened as it is in a mean of probabilities. Not the
maximum: with nine crops, the max flags an image whenever any one crop looks generated, which
multiplies the false accusations of real photographs, the worst error this product can make.

The rule is inference behaviour: training and the exported signatures do not change, and the rule
is recorded nowhere in the run directory (whether to mirror is read from the training metadata).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
"""At most this many squares (crops, or resized whole images, and their mirrors) per ``serve_pixels``
call (the squares of one image are never split)."""
MIRROR_AUGMENTATION = "hflip"
"""The training augmentation (``train.augment``) after which squares are also scored mirrored."""

PixelScorer = Callable[[np.ndarray], Sequence[float]]


@dataclass(frozen=True, eq=False)
class PreparedPixels:
    """One image ready for ``serve_pixels``: its crops, or the whole image resized."""

    squares: np.ndarray  # (n, image_size, image_size, 3) uint8
    cropped: bool  # True: n crops combined by their mean logit; False: one resized image


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
    except Exception:  # not an image Pillow knows, or too large to open: the decoder decides
        return None
    return int(height), int(width)


def decode(image: bytes) -> np.ndarray:
    """The image as (height, width, 3) uint8 RGB, decoded exactly as the exported signature does."""
    import tensorflow as tf

    from aiclassify.preprocessing import decode_rgb

    return decode_rgb(tf.constant(image, dtype=tf.string)).numpy()


def mirrors_views(metadata: dict) -> bool:
    """Whether a run's model is scored on mirror images too: it was trained with horizontal flips."""
    augment = metadata.get("augment") or ()
    return isinstance(augment, (list, tuple)) and MIRROR_AUGMENTATION in augment


def views(squares: np.ndarray, mirror: bool) -> np.ndarray:
    """The squares an image is scored on: ``squares``, then (with ``mirror``) each one mirrored
    left to right, in the same order."""
    return np.concatenate([squares, squares[:, :, ::-1]]) if mirror else squares


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


class CropScorer:
    """The module's rule as a two-stage scorer (:class:`aiclassify.predict.stages.ImageScorer`).

    ``score_pixels`` scores a float32 0-255 batch of ``image_size`` squares (``serve_pixels``, or a
    Keras model); with ``mirror``, each square's mirror image is scored too (:func:`views`).
    Calling the scorer on encoded images prepares and scores them.
    """

    def __init__(self, score_pixels: PixelScorer, image_size: int, mirror: bool = False):
        import tensorflow as tf

        from aiclassify.preprocessing import decode_rgb, resize_square

        self.score_pixels = score_pixels
        self.image_size = int(image_size)
        self.mirror = bool(mirror)
        self.views_per_square = 2 if self.mirror else 1
        square = tf.TensorSpec((self.image_size, self.image_size, 3), tf.uint8)

        def resized_and_size(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            pixels = decode_rgb(image)
            return resize_square(pixels, self.image_size), tf.shape(pixels)[:2]

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def decode_resized(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return tf.map_fn(
                resized_and_size, images, fn_output_signature=(square, tf.TensorSpec((2,), tf.int32))
            )

        self._decode_resized = decode_resized

    def __call__(self, images: list[bytes]) -> np.ndarray:
        """Raw P(AI-generated) of encoded images: :meth:`prepare`, then :meth:`score`."""
        return self.score(self.prepare(images))

    def prepare(self, images: Sequence[bytes]) -> list[PreparedPixels]:
        """Decode each image and resize it or cut its crops, by its decoded size.

        Images whose header says they are too small for crops are decoded and resized in one
        TensorFlow call (one found to need crops after all is decoded again, alone); the others
        one by one. Raises TensorFlow's InvalidArgumentError on an undecodable image.
        """
        import tensorflow as tf

        images = list(images)
        prepared: list[PreparedPixels | None] = [None] * len(images)
        small = []
        for index, image in enumerate(images):
            size = header_size(image)
            if size is not None and uses_crops(*size, self.image_size):
                prepared[index] = self._prepare_one(image)
            else:
                small.append(index)
        if small:
            squares, sizes = self._decode_resized(tf.constant([images[i] for i in small], dtype=tf.string))
            for index, square, (height, width) in zip(small, squares.numpy(), sizes.numpy(), strict=True):
                if uses_crops(int(height), int(width), self.image_size):
                    prepared[index] = self._prepare_one(images[index])
                else:
                    prepared[index] = PreparedPixels(square[None], cropped=False)
        return prepared

    def _prepare_one(self, image: bytes) -> PreparedPixels:
        """One image decoded at native size, then cropped or (when it is smaller than it said) resized."""
        import tensorflow as tf

        from aiclassify.preprocessing import decode_rgb, resize_square

        pixels = decode_rgb(tf.constant(image, dtype=tf.string))
        height, width = (int(side) for side in pixels.shape[:2])
        if uses_crops(height, width, self.image_size):
            return PreparedPixels(crops(pixels.numpy(), self.image_size), cropped=True)
        return PreparedPixels(resize_square(pixels, self.image_size).numpy()[None], cropped=False)

    def score(self, prepared: Sequence[PreparedPixels]) -> np.ndarray:
        """Raw P(AI-generated) of prepared images: one ``score_pixels`` call per
        :data:`CROPS_PER_CALL` squares; an image's crops (and mirrors) combined by their mean logit."""
        result = np.zeros(len(prepared), dtype=np.float32)
        for group in _calls(list(enumerate(prepared)), self.views_per_square):
            batch = np.concatenate([views(item.squares, self.mirror) for _, item in group]).astype(np.float32)
            scores = np.asarray(self.score_pixels(batch), dtype=np.float32).reshape(-1)
            if len(scores) != len(batch):
                raise RuntimeError(f"the model returned {len(scores)} scores for {len(batch)} squares")
            start = 0
            for index, item in group:
                count = len(item.squares) * self.views_per_square
                piece = scores[start : start + count]
                result[index] = combine(piece.astype(np.float64)) if count > 1 else piece[0]
                start += count
        return result


def _calls(
    items: list[tuple[int, PreparedPixels]], views_per_square: int = 1
) -> list[list[tuple[int, PreparedPixels]]]:
    """Prepared images grouped into calls of at most :data:`CROPS_PER_CALL` scored squares (an
    image that has more on its own gets a call of its own)."""
    groups: list[list[tuple[int, PreparedPixels]]] = []
    count = CROPS_PER_CALL
    for item in items:
        squares = len(item[1].squares) * views_per_square
        if count + squares > CROPS_PER_CALL:
            groups.append([])
            count = 0
        groups[-1].append(item)
        count += squares
    return groups


def saved_model_crop_scorer(
    path: Path, mirror: bool = False
) -> CropScorer | Callable[[list[bytes]], np.ndarray]:
    """Score encoded images with a SavedModel by the module's rule through ``serve_pixels``, its
    input size read from that signature (``mirror``: :class:`CropScorer`'s). A SavedModel without
    ``serve_pixels`` is scored through ``serving_default`` on the bytes (a plain score function:
    its images are decoded while scored, never mirrored)."""
    import tensorflow as tf

    from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, PIXELS_SIGNATURE, load_saved_model

    loaded = load_saved_model(path)
    if PIXELS_SIGNATURE not in loaded.signatures:
        serve = loaded.signatures[BYTES_SIGNATURE]

        def score_bytes(images: list[bytes]) -> np.ndarray:
            return serve(image_bytes=tf.constant(images, dtype=tf.string))[OUTPUT_KEY].numpy()

        return score_bytes
    serve_pixels = loaded.signatures[PIXELS_SIGNATURE]
    image_size = int(serve_pixels.structured_input_signature[1]["pixels"].shape[1])

    def score_pixels(pixels: np.ndarray) -> np.ndarray:
        return serve_pixels(pixels=tf.constant(pixels, dtype=tf.float32))[OUTPUT_KEY].numpy()

    return CropScorer(score_pixels, image_size, mirror)
