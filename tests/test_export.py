"""The exported SavedModel, round-tripped against the in-memory model (backbones: tests/test_backbones.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from aiclassify import runs
from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, PIXELS_SIGNATURE, export_saved_model
from aiclassify.models import build_model, imagenet_models, standalone_model_names
from aiclassify.preprocessing import decode_batch


def test_reloaded_saved_model_matches_in_memory_model(tiny_run, encoded_images):
    model = keras.saving.load_model(tiny_run / runs.MODEL_FILE)
    expected = model(tf.cast(decode_batch(tf.constant(encoded_images), 32), tf.float32)).numpy().ravel()
    reloaded = tf.saved_model.load(str(tiny_run / runs.SAVED_MODEL_DIR))
    served = reloaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant(encoded_images))[OUTPUT_KEY]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert served.shape == (len(encoded_images),)


def test_pixel_signature_matches_bytes_signature(tiny_run, encoded_images):
    reloaded = tf.saved_model.load(str(tiny_run / runs.SAVED_MODEL_DIR))
    pixels = tf.cast(decode_batch(tf.constant(encoded_images), 32), tf.float32)
    by_pixels = reloaded.signatures[PIXELS_SIGNATURE](pixels=pixels)[OUTPUT_KEY]
    by_bytes = reloaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant(encoded_images))[OUTPUT_KEY]
    np.testing.assert_allclose(by_pixels.numpy(), by_bytes.numpy(), rtol=1e-5, atol=1e-6)


def test_the_saved_model_stores_each_weight_once(tmp_path):
    model = build_model("cnn5", 32)
    export_saved_model(model, tmp_path / "saved_model", 32)
    stored = sum(
        path.stat().st_size for path in (tmp_path / "saved_model" / "variables").glob("variables.data-*")
    )
    weight_bytes = sum(int(np.prod(weight.shape)) * 4 for weight in model.weights)
    assert weight_bytes <= stored < 1.05 * weight_bytes


def test_export_replaces_previous_export_atomically(tmp_path):
    model = build_model("cnn_small2", 32)
    target = tmp_path / "saved_model"
    export_saved_model(model, target, 32)
    first = (target / "saved_model.pb").stat().st_mtime_ns
    export_saved_model(model, target, 32)
    assert (target / "saved_model.pb").stat().st_mtime_ns != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


@pytest.mark.parametrize("name", sorted(set(standalone_model_names()) - set(imagenet_models())))
def test_every_model_trains_a_step_and_round_trips_through_the_export(tmp_path, name, encoded_images):
    model = build_model(name, 32)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    before = [np.asarray(weight).copy() for weight in model.trainable_weights]
    model.fit(pixels, np.array([0, 1, 0, 1], dtype="float32"), epochs=1, verbose=0)
    assert any(
        not np.array_equal(np.asarray(weight), old)
        for weight, old in zip(model.trainable_weights, before, strict=True)
    )
    export_saved_model(model, tmp_path / "saved_model", 32)
    expected = model(tf.cast(decode_batch(tf.constant(encoded_images), 32), tf.float32)).numpy().ravel()
    reloaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    served = reloaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant(encoded_images))[OUTPUT_KEY]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_large_weights_are_split_into_shards_that_load_back(tmp_path, encoded_images):
    model = build_model("cnn5", 32)
    shard_bytes = 4 * 1024 * 1024  # cnn5's 20 MB of weights, its largest tensor 9.4 MB
    export_saved_model(model, tmp_path / "saved_model", 32, max_shard_bytes=shard_bytes)
    shards = sorted((tmp_path / "saved_model" / "variables").glob("variables.data-*"))
    assert len(shards) >= 5
    assert all(path.stat().st_size <= shard_bytes for path in shards)
    expected = model(tf.cast(decode_batch(tf.constant(encoded_images), 32), tf.float32)).numpy().ravel()
    reloaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    served = reloaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant(encoded_images))[OUTPUT_KEY]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_shard_size_below_one_byte_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Received: max_shard_bytes=0"):
        export_saved_model(build_model("cnn_small2", 32), tmp_path / "saved_model", 32, max_shard_bytes=0)
