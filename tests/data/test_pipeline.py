"""Decoding, validation of files and the tf.data pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from builders import encode
from PIL import Image

from aiclassify.data.layouts import Sample
from aiclassify.data.pipeline import load_example, make_dataset
from aiclassify.data.validate import drop_unreadable, image_problem
from aiclassify.preprocessing import decode_and_resize, decode_batch


def gradient_image(width: int = 40, height: int = 30, mode: str = "RGB") -> Image.Image:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    return Image.fromarray(pixels).convert(mode)


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("PNG", "RGB"),
        ("JPEG", "RGB"),
        ("WEBP", "RGB"),
        ("BMP", "RGB"),
        ("GIF", "P"),
        ("PNG", "L"),
        ("PNG", "RGBA"),
    ],
)
def test_decode_and_resize_handles_formats_and_modes(fmt, mode):
    image = decode_and_resize(tf.constant(encode(gradient_image(mode=mode), fmt)), 16)
    assert image.shape == (16, 16, 3) and image.dtype == tf.uint8


def test_decode_is_exact_at_native_size():
    source = gradient_image(32, 32)
    decoded = decode_and_resize(tf.constant(encode(source, "PNG")), 32).numpy()
    np.testing.assert_array_equal(decoded, np.asarray(source))


def test_decode_same_eagerly_in_dataset_map_and_in_batch():
    data = [encode(gradient_image(), "JPEG", quality=90), encode(gradient_image(50, 20), "PNG")]
    eager = np.stack([decode_and_resize(tf.constant(b), 24).numpy() for b in data])
    mapped = np.stack(list(tf.data.Dataset.from_tensor_slices(data).map(lambda b: decode_and_resize(b, 24))))
    batched = decode_batch(tf.constant(data), 24).numpy()
    np.testing.assert_array_equal(eager, mapped)
    np.testing.assert_array_equal(eager, batched)


def test_load_example_eagerly_and_in_map(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(encode(gradient_image(), "PNG"))
    image, label = load_example(tf.constant(str(path)), tf.constant(1), 32)
    assert image.shape == (32, 32, 3) and float(label) == 1.0
    mapped = next(iter(tf.data.Dataset.from_tensors((str(path), 1)).map(lambda p, y: load_example(p, y, 32))))
    np.testing.assert_array_equal(mapped[0].numpy(), image.numpy())


def corrupt_files(folder):
    good = folder / "good.jpg"
    good.write_bytes(encode(gradient_image(), "JPEG"))
    text = folder / "notes.jpg"
    text.write_text("not an image at all")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(encode(gradient_image(200, 200), "JPEG")[:600])
    tiff = folder / "scan.tif"
    tiff.write_bytes(encode(gradient_image(), "TIFF"))
    return good, text, truncated, tiff


def test_unusable_files_are_reported_with_reasons(tmp_path, caplog):
    good, text, truncated, tiff = corrupt_files(tmp_path)
    assert image_problem(str(good)) is None
    assert image_problem(str(text)) == "not an image"
    assert "unreadable image" in image_problem(str(truncated))
    assert "unsupported format TIFF" in image_problem(str(tiff))
    samples = [Sample(str(p), 0) for p in (good, text, truncated, tiff)]
    kept, skipped = drop_unreadable(samples)
    assert kept == [samples[0]]
    assert {s.path for s in skipped} == {str(text), str(truncated), str(tiff)}
    assert str(text) in caplog.text


def test_dataset_yields_batches_of_raw_pixels_and_drops_undecodable(tmp_path):
    good, text, _, _ = corrupt_files(tmp_path)
    samples = [Sample(str(good), 1)] * 5 + [Sample(str(text), 0)]
    dataset = make_dataset(samples, 32, batch_size=4, training=True, seed=0)
    batches = list(dataset)
    assert [int(x.shape[0]) for x, _ in batches] == [4, 1]
    images, labels = batches[0]
    assert images.dtype == tf.uint8 and images.shape[1:] == (32, 32, 3)
    assert labels.dtype == tf.float32 and set(labels.numpy()) == {1.0}


def test_disk_cache_survives_a_stale_lock(tmp_path):
    good, *_ = corrupt_files(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "images_0.lockfile").write_text("left by a killed run")
    dataset = make_dataset([Sample(str(good), 0)] * 3, 16, 2, False, 0, cache="disk", cache_dir=cache_dir)
    assert sum(int(x.shape[0]) for x, _ in dataset) == 3


def test_bad_cache_mode_is_rejected():
    with pytest.raises(ValueError, match="Received: cache='ram'"):
        make_dataset([Sample("x", 0)], 16, 2, False, 0, cache="ram")


def test_animated_webp_is_reported_not_fed_to_the_decoder(tmp_path):
    frames = [gradient_image(), gradient_image().rotate(90)]
    path = tmp_path / "animated.webp"
    frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:])
    assert "animated WebP" in image_problem(str(path))
