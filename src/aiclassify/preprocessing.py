"""The one definition of how encoded image bytes become model input.

Training, evaluation, export and serving all decode with :func:`decode_rgb` (through
:func:`decode_and_resize` wherever the image is brought to the model's size), and pixel scaling
lives inside the model, so the four cannot drift apart. Training with ``data.train_crop`` keeps
images at native size and crops them (:mod:`aiclassify.data.pipeline`); crop scoring of large
images at inference (:mod:`aiclassify.predict.crops`) decodes with :func:`decode_rgb` too.
"""

from __future__ import annotations

import tensorflow as tf


def decode_rgb(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decode one encoded image (JPEG, PNG, WebP, BMP, GIF first frame) to uint8 RGB at native size."""
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def resize_square(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Resize a decoded image to ``image_size`` square with antialiasing, as uint8 0-255."""
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
    return tf.ensure_shape(tf.cast(image, tf.uint8), (image_size, image_size, 3))


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode one encoded image to RGB and resize it to ``image_size`` square, as uint8 0-255."""
    return resize_square(decode_rgb(image_bytes), image_size)


def decode_batch(images_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode a 1-D string tensor of encoded images into a uint8 batch."""
    return tf.map_fn(
        lambda one: decode_and_resize(one, image_size),
        images_bytes,
        fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8),
    )
