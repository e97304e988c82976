"""Crop scoring of large images: the rule, the grid, the decode and the combination."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from builders import encode
from PIL import Image

from aiclassify.calibration import logit, sigmoid
from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, PIXELS_SIGNATURE, load_saved_model
from aiclassify.predict import Predictor
from aiclassify.predict import crops as crops_module
from aiclassify.predict.crops import (
    CROP_FACTOR,
    MAX_CROPS,
    CropScorer,
    combine,
    crop_offsets,
    crops,
    decode,
    header_size,
    mirrors_views,
    uses_crops,
    views,
)
from aiclassify.predict.predictor import keras_scorer, load_run_keras_model
from aiclassify.preprocessing import decode_and_resize

SIZE = 32  # the tiny run's input size


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png(width: int, height: int, seed: int = 0) -> bytes:
    return encode(Image.fromarray(noise(width, height, seed)), "PNG")


@pytest.fixture(scope="module")
def signatures(tiny_run):
    loaded = load_saved_model(tiny_run / "saved_model")
    return loaded, loaded.signatures[BYTES_SIGNATURE], loaded.signatures[PIXELS_SIGNATURE]


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.load(tiny_run)


def score_pixels_one_by_one(serve_pixels, pixels: np.ndarray) -> list[float]:
    return [
        float(serve_pixels(pixels=tf.constant(crop[None], tf.float32))[OUTPUT_KEY].numpy()[0])
        for crop in pixels
    ]


def test_the_rule_boundary_is_twice_the_input_size():
    assert CROP_FACTOR == 2 and MAX_CROPS == 9
    assert not uses_crops(63, 300, SIZE) and uses_crops(64, 300, SIZE)
    assert not uses_crops(300, 63, SIZE) and uses_crops(64, 64, SIZE)


@pytest.mark.parametrize(
    ("height", "width", "grid"),
    [
        (256, 256, (3, 3)),
        (96, 96, (3, 3)),
        (64, 64, (2, 2)),
        (64, 300, (2, 3)),
        (95, 140, (2, 3)),
        (63, 300, (0, 0)),
    ],
)
def test_crops_lie_on_an_even_grid_inside_the_image(height, width, grid):
    offsets = crop_offsets(height, width, SIZE)
    assert len(offsets) == grid[0] * grid[1] <= MAX_CROPS
    if not offsets:
        return
    tops, lefts = sorted({top for top, _ in offsets}), sorted({left for _, left in offsets})
    assert (len(tops), len(lefts)) == grid
    assert all(0 <= top <= height - SIZE for top in tops) and all(0 <= left <= width - SIZE for left in lefts)
    assert all(b - a >= SIZE for a, b in zip(tops, tops[1:], strict=False))  # cells do not overlap
    assert offsets == crop_offsets(height, width, SIZE)  # deterministic
    centres = [top + SIZE / 2 for top in tops]
    cell = height / grid[0]
    assert all(abs(c - (i + 0.5) * cell) <= 1 for i, c in enumerate(centres))  # centred in equal cells


def test_crops_are_native_pixels():
    image = noise(256, 256)
    pieces = crops(image, SIZE)
    assert pieces.shape == (9, SIZE, SIZE, 3) and pieces.dtype == np.uint8
    top, left = crop_offsets(256, 256, SIZE)[4]
    np.testing.assert_array_equal(pieces[4], image[top : top + SIZE, left : left + SIZE])


def test_a_large_image_is_the_mean_logit_of_its_nine_crops(signatures, predictor):
    _, _, serve_pixels = signatures
    data = png(256, 256, seed=3)
    pieces = crops(decode(data), SIZE).astype(np.float32)
    assert len(pieces) == 9
    one_by_one = score_pixels_one_by_one(serve_pixels, pieces)
    expected = float(sigmoid(np.mean(logit(np.array(one_by_one)))))
    assert predictor.probabilities([data])[0] == pytest.approx(expected, abs=1e-6)
    assert combine(one_by_one) == pytest.approx(expected, abs=1e-12)


def test_a_small_image_goes_through_serving_default_unchanged(signatures, predictor):
    _, serve, _ = signatures
    for data in (png(40, 40), png(63, 300, seed=1)):
        before = serve(image_bytes=tf.constant([data]))[OUTPUT_KEY].numpy()[0]
        assert predictor.probabilities([data])[0] == before  # exactly the same number


def test_the_boundary_image_is_scored_on_six_crops(signatures, predictor):
    _, serve, serve_pixels = signatures
    data = png(300, 64, seed=2)  # 64 high, 300 wide: 2 rows of 3 crops
    pieces = crops(decode(data), SIZE).astype(np.float32)
    assert len(pieces) == 6
    expected = combine(score_pixels_one_by_one(serve_pixels, pieces))
    assert predictor.probabilities([data])[0] == pytest.approx(expected, abs=1e-6)
    resized = serve(image_bytes=tf.constant([data]))[OUTPUT_KEY].numpy()[0]
    assert predictor.probabilities([data])[0] != resized


def test_a_mixed_batch_keeps_its_order(predictor):
    images = [png(40, 40, 0), png(256, 256, 1), png(20, 30, 2), png(128, 100, 3), png(64, 64, 4)]
    together = predictor.probabilities(images)
    alone = np.array([predictor.probabilities([image])[0] for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_many_large_images_are_split_into_calls_without_splitting_an_image(monkeypatch, predictor):
    monkeypatch.setattr(crops_module, "CROPS_PER_CALL", 20)
    calls = []
    inner = crops_module.CropScorer

    def recording(score_pixels, image_size, mirror=False):
        def counted(pixels):
            calls.append(len(pixels))
            return score_pixels(pixels)

        return inner(counted, image_size, mirror)

    images = [png(256, 256, seed) for seed in range(5)]
    expected = predictor.probabilities(images)
    monkeypatch.setattr(crops_module, "CropScorer", recording)
    model = load_run_keras_model(predictor.run_dir)
    score = keras_scorer(model, SIZE)
    np.testing.assert_allclose(score(images), expected, atol=1e-5)
    assert calls == [18, 18, 9]


def test_the_keras_scorer_crops_like_the_saved_model(tiny_run, predictor):
    score = keras_scorer(load_run_keras_model(tiny_run), SIZE)
    images = [png(256, 256, 5), png(40, 40, 6), png(64, 200, 7)]
    np.testing.assert_allclose(score(images), predictor.probabilities(images), atol=1e-5)


def encoded(fmt: str, width: int, height: int) -> bytes:
    """Noise as ``fmt``; a GIF gets a second, different frame."""
    if fmt == "GIF":
        frames = [Image.fromarray(noise(width, height, seed)).convert("P") for seed in (1, 2)]
        return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    return encode(Image.fromarray(noise(width, height)), fmt)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_crops_decode_as_the_signature_does(fmt):
    square = encoded(fmt, 96, 96)
    at_native_size = decode_and_resize(tf.constant(square), 96).numpy()  # the signature's decoder
    np.testing.assert_array_equal(decode(square), at_native_size)
    oblong = encoded(fmt, 80, 70)
    assert decode(oblong).shape == (70, 80, 3) and decode(oblong).dtype == np.uint8
    assert header_size(oblong) == (70, 80)  # the rule reads the size the decoder produces


def test_an_animated_gif_is_cropped_from_its_first_frame():
    data = encoded("GIF", 96, 96)
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == 2
        first = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal(crops(decode(data), SIZE), crops(first, SIZE))


def test_an_undecodable_image_still_fails_like_before(predictor):
    with pytest.raises(tf.errors.InvalidArgumentError):
        predictor.probabilities([b"not an image"])
    truncated = encode(Image.fromarray(noise(256, 256)), "JPEG")[:300]
    with pytest.raises(tf.errors.InvalidArgumentError):
        predictor.probabilities([truncated])


def test_the_mean_logit_lets_no_single_crop_decide():
    assert combine([0.3]) == pytest.approx(0.3)
    assert combine([0.9, 0.1]) == pytest.approx(0.5)
    one_odd = [0.999] + [0.1] * 8
    assert combine(one_odd) < 0.5 < max(one_odd)  # the max would call this real photo generated
    assert combine(one_odd) > combine([0.1] * 9)  # ...yet the odd crop counts
    assert np.isfinite(combine([1.0, 0.0, 1.0]))


# --- mirror views: models trained with horizontal flips ------------------------------------------------


def left_brightness(pixels: np.ndarray) -> np.ndarray:
    """A scorer that is not mirror-invariant: P(AI) is the left half's mean brightness (0-1)."""
    half = pixels.shape[2] // 2
    return pixels[:, :, :half].mean(axis=(1, 2, 3)) / 255 * 0.98 + 0.01


def test_views_add_each_square_mirrored_in_order():
    squares = noise(SIZE, 3 * SIZE).reshape(3, SIZE, SIZE, 3)
    both = views(squares, mirror=True)
    assert both.shape == (6, SIZE, SIZE, 3)
    np.testing.assert_array_equal(both[:3], squares)
    np.testing.assert_array_equal(both[3 + 1], squares[1][:, ::-1])
    assert views(squares, mirror=False) is squares


def test_only_a_model_trained_with_flips_is_scored_mirrored():
    assert mirrors_views({"augment": ["hflip", "rotation"]})
    assert not mirrors_views({"augment": ["rotation"]})
    assert not mirrors_views({"augment": []}) and not mirrors_views({})


@pytest.mark.parametrize(("width", "height", "squares"), [(40, 40, 1), (256, 256, 9)])
def test_a_mirrored_scorer_takes_the_mean_logit_of_every_view(width, height, squares):
    data = png(width, height, seed=8)
    plain_squares = CropScorer(left_brightness, SIZE).prepare([data])[0].squares
    assert len(plain_squares) == squares
    calls = []

    def recorded(batch):
        calls.append(len(batch))
        return left_brightness(batch)

    mirrored = CropScorer(recorded, SIZE, mirror=True)([data])[0]
    every_view = np.concatenate([left_brightness(plain_squares), left_brightness(plain_squares[:, :, ::-1])])
    assert calls == [2 * squares]
    assert mirrored == pytest.approx(combine(every_view), abs=1e-6)
    plain = CropScorer(left_brightness, SIZE)([data])[0]
    assert plain == pytest.approx(combine(left_brightness(plain_squares)), abs=1e-6)
    assert abs(mirrored - plain) > 1e-4  # the mirror moved the score of this asymmetric scorer


def test_mirrored_images_are_never_split_across_calls():
    calls = []

    def recorded(batch):
        calls.append(len(batch))
        return left_brightness(batch)

    images = [png(256, 256, seed) for seed in range(5)]
    together = CropScorer(recorded, SIZE, mirror=True)(images)
    assert calls == [72, 18]  # 18 squares each: four images (72 squares, the most a call takes), then one
    alone = [CropScorer(left_brightness, SIZE, mirror=True)([image])[0] for image in images]
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_a_run_trained_with_flips_is_served_mirrored(tiny_run, tmp_path):
    import json
    import shutil

    copy = shutil.copytree(tiny_run, tmp_path / "run")
    metadata = json.loads((copy / "metadata.json").read_text())
    assert "hflip" not in metadata.get("augment", [])
    (copy / "metadata.json").write_text(json.dumps({**metadata, "augment": ["hflip"]}))
    images = [png(40, 40, 9), png(256, 256, 10)]
    plain = Predictor.load(tiny_run).probabilities(images)
    mirrored = Predictor.load(copy).probabilities(images)
    model = load_run_keras_model(tiny_run)
    for image, score in zip(images, mirrored, strict=True):
        squares = CropScorer(lambda pixels: pixels, SIZE).prepare([image])[0].squares.astype(np.float32)
        both = np.asarray(model(tf.constant(views(squares, mirror=True)), training=False)).reshape(-1)
        assert score == pytest.approx(combine(both), abs=1e-5)
    assert not np.allclose(plain, mirrored, atol=1e-6)
