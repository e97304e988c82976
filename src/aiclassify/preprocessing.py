"""The one definition of how encoded image bytes become model input.

Training, evaluation, export and serving all call :func:`decode_and_resize`, and pixel scaling
lives inside the model, so the four cannot drift apart.
"""

from __future__ import annotations

import tensorflow as tf


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode one encoded image to RGB and resize it to ``image_size`` square, as uint8 0-255."""
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
    return tf.ensure_shape(tf.cast(image, tf.uint8), (image_size, image_size, 3))


def decode_batch(images_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode a 1-D string tensor of encoded images into a uint8 batch."""
    return tf.map_fn(
        lambda one: decode_and_resize(one, image_size),
        images_bytes,
        fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8),
    )
