"""Prepare, then score: the split of the inference path, and that it gives the numbers it always gave."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from builders import encode, noise_image
from PIL import Image

from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, PIXELS_SIGNATURE, load_saved_model
from aiclassify.predict import Predictor
from aiclassify.predict.crops import CropScorer, PreparedPixels, crops, decode
from aiclassify.predict.predictor import load_run_keras_model
from aiclassify.predict.stages import BytesScorer, as_scorer
from aiclassify.preprocessing import decode_batch, decode_rgb, resize_square

SIZE = 32  # the tiny run's input size


def mixed_images() -> list[bytes]:
    """Every served format, small, oblong and large (the large ones are resized by serving_default)."""
    sizes = [(20, 30), (48, 40), (63, 300), (300, 63), (100, 100), (64, 64), (8, 8)]
    formats = ["JPEG", "PNG", "WEBP", "BMP", "GIF"]
    pairs = enumerate(sizes * 2)
    return [noise_image(formats[index % len(formats)], size=size, seed=index) for index, size in pairs]


@pytest.fixture(scope="module")
def signatures(tiny_run):
    loaded = load_saved_model(tiny_run / "saved_model")
    return loaded.signatures[BYTES_SIGNATURE], loaded.signatures[PIXELS_SIGNATURE]


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.load(tiny_run)


def test_serving_default_is_serve_pixels_on_the_image_decoded_and_resized(signatures):
    serve_bytes, serve_pixels = signatures
    images = mixed_images()
    from_bytes = serve_bytes(image_bytes=tf.constant(images))[OUTPUT_KEY].numpy()
    pixels = np.stack([resize_square(decode_rgb(tf.constant(image)), SIZE).numpy() for image in images])
    from_pixels = serve_pixels(pixels=tf.constant(pixels.astype(np.float32)))[OUTPUT_KEY].numpy()
    np.testing.assert_array_equal(from_pixels, from_bytes)  # bit for bit, not approximately
    np.testing.assert_array_equal(pixels, decode_batch(tf.constant(images), SIZE).numpy())
    for image in images[:4]:  # and one at a time (a batch's composition moves the last float bits)
        square = tf.cast(resize_square(decode_rgb(tf.constant(image)), SIZE)[None], tf.float32)
        alone = serve_bytes(image_bytes=tf.constant([image]))[OUTPUT_KEY].numpy()[0]
        assert serve_pixels(pixels=square)[OUTPUT_KEY].numpy()[0] == alone


def test_probabilities_are_prepare_then_score_with_serving_defaults_numbers(predictor, signatures):
    serve_bytes, _ = signatures
    images = [image for image in mixed_images() if min(Image.open(io.BytesIO(image)).size) < 64]
    prepared = predictor.prepare(images)
    assert all(isinstance(item, PreparedPixels) and not item.cropped for item in prepared)
    assert all(item.squares.shape == (1, SIZE, SIZE, 3) for item in prepared)
    assert all(item.squares.dtype == np.uint8 for item in prepared)
    scores = predictor.score_prepared(prepared)
    np.testing.assert_array_equal(scores, predictor.probabilities(images))
    np.testing.assert_array_equal(scores, serve_bytes(image_bytes=tf.constant(images))[OUTPUT_KEY].numpy())


def test_an_image_prepared_alone_or_among_others_is_the_same_input(predictor):
    large = [noise_image("PNG", size=(256, 200), seed=9), noise_image("JPEG", size=(64, 90))]
    images = [*mixed_images(), *large]
    together = predictor.prepare(images)
    for image, item in zip(images, together, strict=True):
        [alone] = predictor.prepare([image])
        assert alone.cropped == item.cropped
        np.testing.assert_array_equal(alone.squares, item.squares)
    alone_scores = [predictor.score_prepared(predictor.prepare([image]))[0] for image in images]
    np.testing.assert_allclose(predictor.score_prepared(together), alone_scores, atol=1e-6)


def test_a_large_image_is_prepared_as_its_crops(predictor):
    large = noise_image("PNG", size=(256, 256), seed=3)
    [item] = predictor.prepare([large])
    assert item.cropped and item.squares.shape == (9, SIZE, SIZE, 3)
    np.testing.assert_array_equal(item.squares, crops(decode(large), SIZE))
    [boundary] = predictor.prepare([noise_image("PNG", size=(300, 64))])
    assert boundary.cropped and len(boundary.squares) == 6


def test_small_images_are_decoded_together_in_one_call():
    calls = []
    scorer = CropScorer(lambda pixels: np.full(len(pixels), 0.5, dtype=np.float32), SIZE)
    decode_resized = scorer._decode_resized

    def counted(images):
        calls.append(int(images.shape[0]))
        return decode_resized(images)

    scorer._decode_resized = counted
    images = [noise_image("JPEG", size=(40, 30), seed=seed) for seed in range(20)]
    images.insert(5, noise_image("PNG", size=(128, 128)))  # large: decoded on its own
    prepared = scorer.prepare(images)
    assert calls == [20] and prepared[5].cropped and sum(item.cropped for item in prepared) == 1
    assert scorer.score(prepared).tolist() == [0.5] * 21


def test_an_undecodable_image_fails_in_prepare(predictor):
    with pytest.raises(tf.errors.InvalidArgumentError):
        predictor.prepare([b"not an image"])
    truncated = encode(Image.fromarray(np.zeros((256, 256, 3), np.uint8)), "JPEG")[:300]
    with pytest.raises(tf.errors.InvalidArgumentError):
        predictor.prepare([truncated])


def test_a_plain_score_function_prepares_nothing():
    seen = []

    def score(images: list[bytes]) -> list[float]:
        seen.append(list(images))
        return [len(image) / 100 for image in images]

    predictor = Predictor(score, {})
    images = [b"one", b"three"]
    prepared = predictor.prepare(images)
    assert prepared == images and all(a is b for a, b in zip(prepared, images, strict=True)) and not seen
    assert predictor.score_prepared(prepared).tolist() == [0.03, 0.05] and seen == [images]
    assert isinstance(as_scorer(score), BytesScorer)
    scorer = CropScorer(lambda pixels: np.zeros(len(pixels)), SIZE)
    assert as_scorer(scorer) is scorer


def test_a_saved_model_without_serve_pixels_is_scored_on_its_bytes(tiny_run, tmp_path, signatures):
    model = load_run_keras_model(tiny_run)
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        pixels = tf.cast(decode_batch(image_bytes, SIZE), tf.float32)
        return {OUTPUT_KEY: tf.reshape(model(pixels, training=False), (-1,))}

    archive.add_endpoint(BYTES_SIGNATURE, serve_bytes)
    archive.write_out(str(tmp_path / "saved_model"), verbose=False)
    bytes_only = Predictor.load(tmp_path / "saved_model")
    images = mixed_images()[:5]
    assert bytes_only.prepare(images) == images  # decoded while scored, as before
    expected = signatures[0](image_bytes=tf.constant(images))[OUTPUT_KEY].numpy()
    np.testing.assert_allclose(bytes_only.probabilities(images), expected, atol=1e-6)
