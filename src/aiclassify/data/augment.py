"""Training-only image augmentation with seeded, stateless TensorFlow ops.

:func:`make_augmenter` turns ``train.augment`` names and the ``train.degrade`` settings into one
function of (uint8 image, seed) that ``make_dataset`` maps over training examples after the
cache; evaluation and serving never call it. Every op is stateless, so the same seed gives the
same images, run after run.

The degradations (``train.degrade``: Gaussian blur, JPEG re-encoding, antialiased downscale and
back, random crop resized back) run after the ``train.augment`` ops, each independently with its
own probability. The augmenter never sees the label: real and AI-generated images are degraded
alike, so a degradation cannot become a class cue. :func:`make_degrader` is the degradations
alone (the fixed degraded validation copies of ``train.validation_degraded`` use it).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf

from aiclassify.config import AugmentName, DegradeConfig

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
        if not 0 <= self.jpeg_min_quality < 100:
            raise ValueError(
                f"jpeg_min_quality must be in [0, 100). Received: jpeg_min_quality={self.jpeg_min_quality}"
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


def _crop_back(image: tf.Tensor, scale: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A crop of ``scale`` of each side at a seeded position, resized back with antialiasing."""
    crop = _scaled_size(image, scale)
    cropped = tf.image.stateless_random_crop(image, tf.concat([crop, [3]], 0), seed)
    return tf.image.resize(cropped, tf.shape(image)[:2], antialias=True)


def _down_and_up(image: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """Downscale (antialiased) to ``scale`` of each side, then restore the size (bilinear)."""
    reduced = tf.image.resize(image, _scaled_size(image, scale), antialias=True)
    return tf.image.resize(reduced, tf.shape(image)[:2], method="bilinear")


def _crop_resize(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    scale_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return _crop_back(image, _uniform(scale_seed, o.min_scale, 1.0), crop_seed)


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


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _jpeg(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    quality = tf.image.stateless_random_jpeg_quality(_to_uint8(image), o.jpeg_min_quality, 100, seed)
    return tf.cast(quality, tf.float32)


def _downscale(image: tf.Tensor, seed: tf.Tensor, o: AugmentOptions) -> tf.Tensor:
    return _down_and_up(image, _uniform(seed, o.min_scale, 1.0))


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


# --- train.degrade: degradations applied with a probability each ---------------------------------

DEGRADATIONS: tuple[str, ...] = ("crop", "downscale", "blur", "jpeg")
"""The degradations in the order they are applied (JPEG last, as a re-upload would)."""
_DEGRADE_SALT = 0x6465_6772  # folds the example's seed, so train.augment draws stay as they were


def gaussian_kernel(sigma: tf.Tensor, radius: tf.Tensor) -> tf.Tensor:
    """A normalised 1-D Gaussian of ``2 * radius + 1`` taps (a unit impulse when sigma is 0)."""
    x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    sigma = tf.maximum(tf.cast(sigma, tf.float32), 1e-6)
    weights = tf.exp(-0.5 * tf.square(x / sigma))
    return weights / tf.reduce_sum(weights)


def gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Blur a (height, width, channels) image with a Gaussian of ``sigma`` pixels.

    Separable, built in TensorFlow for any per-example sigma: radius ``ceil(3 * sigma)`` (at most
    one less than the shorter side), reflect padding; float32 out, whatever the input dtype.
    """
    x = tf.cast(image, tf.float32)
    shape = tf.shape(x)
    sigma = tf.cast(sigma, tf.float32)
    radius = tf.cast(tf.math.ceil(3.0 * sigma), tf.int32)
    radius = tf.clip_by_value(radius, 0, tf.minimum(shape[0], shape[1]) - 1)
    kernel = gaussian_kernel(sigma, radius)
    channels = shape[2]
    padded = tf.pad(x[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    rows = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), tf.stack([1, 1, channels, 1]))
    columns = tf.tile(tf.reshape(kernel, (1, -1, 1, 1)), tf.stack([1, 1, channels, 1]))
    blurred = tf.nn.depthwise_conv2d(padded, rows, (1, 1, 1, 1), "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, columns, (1, 1, 1, 1), "VALID")
    return tf.reshape(blurred[0], shape)


def _draw_strength(name: str, seed: tf.Tensor, d: DegradeConfig) -> tf.Tensor:
    if name == "blur":
        return _uniform(seed, 0.0, d.blur_sigma_max)  # sigma in pixels
    if name == "jpeg":
        return tf.random.stateless_uniform((), seed, d.jpeg_quality_min, 101, dtype=tf.int32)  # quality
    if name == "downscale":
        return _uniform(seed, d.downscale_min_scale, 1.0)  # side scale
    return _uniform(seed, d.crop_min_fraction, 1.0)  # crop: side fraction


def apply_degradation(name: str, image: tf.Tensor, strength: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """One degradation at a given strength (float32 out); ``seed`` places the crop.

    ``blur``: Gaussian of sigma ``strength``; ``jpeg``: re-encoded at quality ``strength``;
    ``downscale``: antialiased to ``strength`` of each side, then bilinear back to the size;
    ``crop``: a random crop of ``strength`` of each side, resized back with antialiasing.
    """
    x = tf.cast(image, tf.float32)
    if name == "blur":
        return gaussian_blur(x, strength)
    if name == "jpeg":
        return tf.cast(tf.image.adjust_jpeg_quality(_to_uint8(x), strength), tf.float32)
    if name == "downscale":
        return _down_and_up(x, strength)
    if name == "crop":
        return _crop_back(x, strength, seed)
    raise ValueError(f"Unknown degradation. Valid names: {list(DEGRADATIONS)}. Received: name={name!r}")


def _degradation_seeds(seed: tf.Tensor) -> dict[str, tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    """(draw, strength, position) seeds per degradation, derived from the example's seed alone."""
    base = tf.random.experimental.stateless_fold_in(seed, _DEGRADE_SALT)
    seeds = tf.unstack(tf.random.experimental.stateless_split(base, 3 * len(DEGRADATIONS)))
    return {name: tuple(seeds[3 * i : 3 * i + 3]) for i, name in enumerate(DEGRADATIONS)}


def degradation_draws(degrade: DegradeConfig, seed: tf.Tensor) -> dict[str, tuple[tf.Tensor, tf.Tensor]]:
    """For the example of ``seed``: per degradation, whether it applies and at what strength.

    ``{name: (applies, strength)}``: ``applies`` is a boolean scalar, true when a uniform draw in
    [0, 1) falls below the degradation's probability; ``strength`` (drawn even when it does not
    apply) is the blur sigma, the JPEG quality, the downscale side scale or the crop side
    fraction. A function of the seed and the settings only, never of the image or its label.
    """
    probabilities = degrade.probabilities
    return {
        name: (
            tf.random.stateless_uniform((), draw_seed) < probabilities[name],
            _draw_strength(name, strength_seed, degrade),
        )
        for name, (draw_seed, strength_seed, _) in _degradation_seeds(seed).items()
    }


def _apply_degradations(x: tf.Tensor, seed: tf.Tensor, degrade: DegradeConfig) -> tf.Tensor:
    draws = degradation_draws(degrade, seed)
    seeds = _degradation_seeds(seed)
    for name in DEGRADATIONS:
        if degrade.probabilities[name] == 0.0:
            continue
        applies, strength = draws[name]
        x = tf.cond(
            applies,
            lambda x=x, n=name, s=strength: tf.reshape(apply_degradation(n, x, s, seeds[n][2]), tf.shape(x)),
            lambda x=x: x,
        )
    return x


def degrade_active(degrade: DegradeConfig | None) -> bool:
    """Whether ``degrade`` applies any degradation at all."""
    return degrade is not None and any(p > 0 for p in degrade.probabilities.values())


def make_degrader(degrade: DegradeConfig) -> Augmenter | None:
    """The ``train.degrade`` degradations alone, as an augmenter; None when every probability is 0."""
    return make_augmenter((), None, degrade)


VALIDATION_MIN_PROBABILITY = 0.5
"""Each degradation's probability for ``train.validation_degraded``'s copies is at least this."""


def degrade_for_validation(degrade: DegradeConfig) -> DegradeConfig:
    """``degrade`` with every probability raised to at least :data:`VALIDATION_MIN_PROBABILITY`,
    so that the degraded validation copies are really degraded (each one escapes all four
    degradations with probability at most 1/16)."""
    floor = VALIDATION_MIN_PROBABILITY
    return dataclasses.replace(
        degrade,
        blur_prob=max(degrade.blur_prob, floor),
        jpeg_prob=max(degrade.jpeg_prob, floor),
        downscale_prob=max(degrade.downscale_prob, floor),
        crop_prob=max(degrade.crop_prob, floor),
    )


def make_augmenter(
    names: Sequence[str], options: AugmentOptions | None = None, degrade: DegradeConfig | None = None
) -> Augmenter | None:
    """One function applying ``names`` in the given order, then the ``degrade`` degradations;
    None when there is nothing to apply.

    The function takes a (height, width, 3) uint8 image and a shape-(2,) int64 seed (never the
    label) and returns a uint8 image of the same shape. The ``names`` ops draw from the seed as
    they did before degradations existed; the degradations draw from the seed folded with a
    constant, so adding them leaves the other draws unchanged.
    """
    unknown = [name for name in names if name not in AUGMENT_NAMES]
    if unknown:
        raise ValueError(
            f"Unknown augmentation. Valid names: {list(AUGMENT_NAMES)}. Received: augment={list(names)}"
        )
    degrading = degrade_active(degrade)
    if not names and not degrading:
        return None
    options = options or AugmentOptions()
    chosen = [_OPS[name] for name in names]

    def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        x = tf.cast(image, tf.float32)
        if chosen:
            seeds = tf.unstack(tf.random.experimental.stateless_split(seed, len(chosen)))
            for op, op_seed in zip(chosen, seeds, strict=True):
                x = op(x, op_seed, options)
        if degrading:
            x = _apply_degradations(x, seed, degrade)
        x = _to_uint8(x)
        return tf.ensure_shape(x, image.shape)

    return augment
