"""Export a trained model as a TensorFlow SavedModel that takes encoded image bytes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from aiclassify.preprocessing import decode_batch

BYTES_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "serve_pixels"
OUTPUT_KEY = "probability_ai"
MAX_SHARD_BYTES = 32 * 1024 * 1024
"""The largest file of a SavedModel's variables: bigger weights are split across shards
(``variables.data-0000i-of-0000n``), so every file stays within a release's 40 MB file limit."""


def build_archive(model: keras.Model, image_size: int) -> keras.export.ExportArchive:
    """An export archive with a bytes signature (the default) and a raw-pixels signature.

    ``serving_default`` takes ``image_bytes``, a 1-D string tensor of encoded JPEG, PNG, WebP,
    BMP or GIF images (the ``_bytes`` suffix lets TensorFlow Serving's REST API accept
    ``{"b64": ...}``); ``serve_pixels`` takes ``pixels``, float32 0-255 RGB of shape
    (batch, image_size, image_size, 3). Both return ``probability_ai`` of shape (batch,).
    """
    # No archive.track(model): each endpoint tracks the variables it uses, and tracking the model
    # as well stores every variable twice (a SavedModel twice the size of its weights).
    archive = keras.export.ExportArchive()

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        pixels = tf.cast(decode_batch(image_bytes, image_size), tf.float32)
        return {OUTPUT_KEY: tf.reshape(model(pixels, training=False), (-1,))}

    pixel_spec = tf.TensorSpec((None, image_size, image_size, 3), tf.float32, name="pixels")

    @tf.function(input_signature=[pixel_spec])
    def serve_pixels(pixels):
        return {OUTPUT_KEY: tf.reshape(model(pixels, training=False), (-1,))}

    archive.add_endpoint(BYTES_SIGNATURE, serve_bytes)
    archive.add_endpoint(PIXELS_SIGNATURE, serve_pixels)
    return archive


def export_saved_model(
    model: keras.Model, destination: Path, image_size: int, max_shard_bytes: int = MAX_SHARD_BYTES
) -> Path:
    """Write the SavedModel beside ``destination``, then move it into place; its variables are
    written in shards of at most ``max_shard_bytes`` each (TensorFlow slices a larger tensor)."""
    if max_shard_bytes < 1:
        raise ValueError(f"max_shard_bytes must be positive. Received: max_shard_bytes={max_shard_bytes}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        sharding = tf.train.experimental.MaxShardSizePolicy(max_shard_size=max_shard_bytes)
        options = tf.saved_model.SaveOptions(experimental_sharding_callback=sharding)
        build_archive(model, image_size).write_out(str(staging / "model"), options=options, verbose=False)
        previous = destination.with_name(f".{destination.name}-previous")
        if destination.exists():
            destination.rename(previous)
        (staging / "model").rename(destination)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def load_saved_model(path: Path):
    """Load an exported SavedModel; call ``.signatures['serving_default'](image_bytes=...)``."""
    return tf.saved_model.load(str(path))
