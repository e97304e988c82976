"""Training-only image augmentation with seeded, stateless TensorFlow ops.

:func:`make_augmenter` turns ``train.augment`` names into one function of (uint8 image, seed)
that ``make_dataset`` maps over training examples after the cache; evaluation and serving never
call it. Every op is stateless, so the same seed gives the same images, run after run.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf

from aiclassify.config import AugmentName

AUGMENT_NAMES: tuple[str, ...] = typing.get_args(AugmentName)

Augmenter = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class AugmentOptions:
    """Strengths of the augmentations (the ``train.augment_*`` config keys)."""

    rotation_degrees: float = 15.0  # angle drawn uniformly from [-d, d]
    min_scale: float = 0.8  # crop_resize and downscale: side scale drawn from [min_scale, 1]
    noise_sigma: float = 4.0  # Gaussian noise std in 0-255 pixel units
    color_strength: float = 0.2  # brightness delta (fraction of 255) and contrast/saturation factor range
    jpeg_min_quality: int = 60  # JPEG quality drawn from [jpeg_min_quality, 100]

    def __post_init__(self) -> None:
        if not 0.0 < self.min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1]. Received: min_scale={self.min_scale}")
        if not 0 <= self.jpeg_min_quality <= 100:
            raise ValueError(
                f"jpeg_min_quality must be in [0, 100]. Received: jpeg_min_quality={self.jpeg_min_quality}"
            )
        for name in ("rotation_degrees", "noise_sigma", "color_strength"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")


def _uniform(seed: tf.Tensor, low: float, high: float) -> tf.Tensor:
    return tf.random.stateless_uniform((), seed, minval=low, maxval=high)


def _scaled_size(image: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    return tf.maximum(tf.cast(tf.round(size * scale), tf.int32), 1)


def _rotation(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    limit = math.radians(o.rotation_degrees)
    angle = _uniform(seed, -limit, limit)
    height, width = (tf.cast(d, tf.float32) for d in (tf.shape(image)[0], tf.shape(image)[1]))
    cos, sin = tf.cos(angle), tf.sin(angle)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    transform = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])[None, :]
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return rotated[0]


def _crop_resize(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    scale_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    crop = _scaled_size(image, _uniform(scale_seed, o.min_scale, 1.0))
    cropped = tf.image.stateless_random_crop(image, tf.concat([crop, [3]], 0), crop_seed)
    return tf.image.resize(cropped, tf.shape(image)[:2], antialias=True)


def _noise(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    return image + o.noise_sigma * tf.random.stateless_normal(tf.shape(image), seed)


def _color_jitter(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    s = o.color_strength
    if s == 0:
        return image
    low, high = max(1.0 - s, 0.0), 1.0 + s
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    x = tf.clip_by_value(image / 255.0, 0.0, 1.0)
    x = tf.image.stateless_random_brightness(x, s, seeds[0])
    x = tf.image.stateless_random_contrast(x, low, high, seeds[1])
    x = tf.image.stateless_random_saturation(tf.clip_by_value(x, 0.0, 1.0), low, high, seeds[2])
    return x * 255.0


def _jpeg(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    pixels = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    quality = tf.image.stateless_random_jpeg_quality(pixels, o.jpeg_min_quality, 100, seed)
    return tf.cast(quality, tf.float32)


def _downscale(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    small = _scaled_size(image, _uniform(seed, o.min_scale, 1.0))
    reduced = tf.image.resize(image, small, antialias=True)
    return tf.image.resize(reduced, tf.shape(image)[:2], method="bilinear")


_OPS = {
    "hflip": lambda image, seed, o: tf.image.stateless_random_flip_left_right(image, seed),
    "vflip": lambda image, seed, o: tf.image.stateless_random_flip_up_down(image, seed),
    "rotation": _rotation,
    "crop_resize": _crop_resize,
    "noise": _noise,
    "color_jitter": _color_jitter,
    "jpeg": _jpeg,
    "downscale": _downscale,
}


def make_augmenter(names: Sequence[str], options: AugmentOptions | None = None) -> Augmenter | None:
    """One function applying ``names`` in the given order, or None when ``names`` is empty.

    The function takes a (height, width, 3) uint8 image and a shape-(2,) int64 seed and returns
    a uint8 image of the same shape.
    """
    unknown = [name for name in names if name not in AUGMENT_NAMES]
    if unknown:
        raise ValueError(
            f"Unknown augmentation. Valid names: {list(AUGMENT_NAMES)}. Received: augment={list(names)}"
        )
    if not names:
        return None
    options = options or AugmentOptions()
    chosen = [_OPS[name] for name in names]

    def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, len(chosen)))
        x = tf.cast(image, tf.float32)
        for op, op_seed in zip(chosen, seeds, strict=True):
            x = op(x, op_seed, options)
        x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
        return tf.ensure_shape(x, image.shape)

    return augment
