"""Decoding, validation of files and the tf.data pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from builders import encode
from PIL import Image

from aiclassify.data import pipeline
from aiclassify.data.layouts import Sample
from aiclassify.data.pipeline import load_example, make_dataset, with_degraded_copies
from aiclassify.data.validate import drop_unreadable, image_problem
from aiclassify.preprocessing import decode_and_resize, decode_batch, decode_rgb, resize_square


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


def test_dataset_shards_by_batch_and_can_keep_only_full_batches(tmp_path):
    good, *_ = corrupt_files(tmp_path)
    samples = [Sample(str(good), 1)] * 5
    dataset = make_dataset(samples, 32, batch_size=2, training=True, seed=0, drop_remainder=True)
    assert [int(x.shape[0]) for x, _ in dataset] == [2, 2]
    policy = dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA


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


# --- decode_rgb, data.train_crop, degraded validation copies -----------------------------------------


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("fmt", "options"), [("PNG", {}), ("JPEG", {"quality": 85}), ("BMP", {})])
def test_decode_rgb_is_decode_and_resize_at_native_size(fmt, options):
    data = tf.constant(encode(gradient_image(48, 36), fmt, **options))
    native = decode_rgb(data)
    assert native.dtype == tf.uint8 and native.shape == (36, 48, 3)
    np.testing.assert_array_equal(resize_square(native, 20).numpy(), decode_and_resize(data, 20).numpy())


def test_decode_rgb_takes_the_first_frame_of_an_animated_gif():
    frames = [Image.fromarray(noise(24, 24, seed)).convert("P") for seed in (1, 2)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    decoded = decode_rgb(tf.constant(data)).numpy()
    assert decoded.shape == (24, 24, 3)
    np.testing.assert_array_equal(decoded, np.asarray(frames[0].convert("RGB")))


def write_images(folder, sizes) -> list[Sample]:
    samples = []
    for index, (width, height) in enumerate(sizes):
        path = folder / f"{index}.png"
        Image.fromarray(noise(width, height, index)).save(path)
        samples.append(Sample(str(path), index % 2))
    return samples


def is_native_crop(crop: np.ndarray, image: np.ndarray) -> bool:
    size = crop.shape[0]
    return any(
        np.array_equal(image[top : top + size, left : left + size], crop)
        for top in range(image.shape[0] - size + 1)
        for left in range(image.shape[1] - size + 1)
    )


def test_train_crop_crops_large_training_images_at_native_resolution(tmp_path):
    samples = write_images(tmp_path, [(48, 40)] * 4)
    originals = [np.asarray(Image.open(s.path)) for s in samples]
    dataset = make_dataset(samples, 32, 4, True, seed=3, cache="memory", shuffle_buffer=1, train_crop=True)
    epochs = [next(iter(dataset))[0].numpy() for _ in range(2)]
    for images in epochs:
        assert images.shape == (4, 32, 32, 3)
        assert all(is_native_crop(crop, image) for crop, image in zip(images, originals, strict=True))
    assert not np.array_equal(epochs[0], epochs[1])  # a new crop every epoch, from the cache
    again = make_dataset(samples, 32, 4, True, seed=3, cache="memory", shuffle_buffer=1, train_crop=True)
    np.testing.assert_array_equal(next(iter(again))[0].numpy(), epochs[0])  # seeded
    resized = make_dataset(samples, 32, 4, True, seed=3, cache="none", shuffle_buffer=1)
    assert not any(
        is_native_crop(x, image) for x, image in zip(next(iter(resized))[0].numpy(), originals, strict=True)
    )


def test_train_crop_resizes_small_training_images(tmp_path):
    samples = write_images(tmp_path, [(48, 20), (20, 20), (32, 32)])
    expected = [decode_and_resize(tf.io.read_file(s.path), 32).numpy() for s in samples]
    cropped = make_dataset(samples, 32, 3, True, seed=0, cache="none", shuffle_buffer=1, train_crop=True)
    np.testing.assert_array_equal(next(iter(cropped))[0].numpy(), np.stack(expected))  # resized up as before


def test_train_crop_validates_large_images_on_their_native_centre_crop(tmp_path):
    # 70x64 and 64x80 reach the crop threshold of inference (2 x 32): native centre crops;
    # 48x48 does not: resized whole, as the exported signature does.
    samples = write_images(tmp_path, [(70, 64), (64, 80), (48, 48)])
    originals = [np.asarray(Image.open(s.path)) for s in samples]
    evaluation = next(iter(make_dataset(samples, 32, 3, False, seed=0, cache="none", train_crop=True)))[0]
    np.testing.assert_array_equal(evaluation[0].numpy(), originals[0][16:48, 19:51])
    np.testing.assert_array_equal(evaluation[1].numpy(), originals[1][24:56, 16:48])
    np.testing.assert_array_equal(
        evaluation[2].numpy(), decode_and_resize(tf.io.read_file(samples[2].path), 32)
    )
    plain = next(iter(make_dataset(samples, 32, 3, False, seed=0, cache="none")))[0]
    resized = [decode_and_resize(tf.io.read_file(s.path), 32).numpy() for s in samples]
    np.testing.assert_array_equal(plain.numpy(), np.stack(resized))  # without train_crop: resized


def test_train_crop_caches_native_images_on_disk(tmp_path):
    samples = write_images(tmp_path, [(40, 36), (50, 60), (16, 16)])
    cache_dir = tmp_path / "cache"
    dataset = make_dataset(samples, 32, 3, True, 0, cache="disk", cache_dir=cache_dir, train_crop=True)
    first = next(iter(dataset))[0]
    for sample in samples:
        Path(sample.path).unlink()  # the second epoch reads the cache only
    second = next(iter(dataset))[0]
    assert first.shape == second.shape == (3, 32, 32, 3)
    assert list(cache_dir.glob("images*"))


def test_degraded_copies_follow_each_clean_image_with_fixed_seeds(tmp_path):
    from aiclassify.config import DegradeConfig
    from aiclassify.data.augment import make_degrader

    samples = write_images(tmp_path, [(32, 32)] * 5)
    clean = make_dataset(samples, 32, 2, False, seed=0, cache="memory")
    degrader = make_degrader(DegradeConfig(jpeg_prob=1.0, blur_prob=0.5))
    monitored = with_degraded_copies(clean, degrader, seed=42, batch_size=2)
    epochs = [[(x.numpy(), y.numpy()) for x, y in monitored] for _ in range(2)]
    images = np.concatenate([x for x, _ in epochs[0]])
    labels = np.concatenate([y for _, y in epochs[0]])
    assert [len(x) for x, _ in epochs[0]] == [2, 2, 2, 2, 2]
    clean_images = np.concatenate([x.numpy() for x, _ in clean])
    clean_labels = np.concatenate([y.numpy() for _, y in clean])
    np.testing.assert_array_equal(images[0::2], clean_images)
    np.testing.assert_array_equal(labels[0::2], clean_labels)
    np.testing.assert_array_equal(labels[1::2], clean_labels)
    assert all(
        not np.array_equal(copy, original) for copy, original in zip(images[1::2], clean_images, strict=True)
    )
    for (x1, y1), (x2, y2) in zip(*epochs, strict=True):  # the same copies every epoch
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    for index, original in enumerate(clean_images):
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([42, index], tf.int64), pipeline._COPY_SALT
        )
        np.testing.assert_array_equal(images[2 * index + 1], degrader(tf.constant(original), seed).numpy())


def test_degraded_copies_share_the_clean_cache(tmp_path):
    from aiclassify.config import DegradeConfig
    from aiclassify.data.augment import make_degrader

    samples = write_images(tmp_path, [(32, 32)] * 3)
    clean = make_dataset(samples, 32, 3, False, seed=0, cache="memory")
    monitored = with_degraded_copies(clean, make_degrader(DegradeConfig(jpeg_prob=1.0)), 0, 3)
    assert sum(len(x) for x, _ in monitored) == 6  # fills the cache
    for sample in samples:
        Path(sample.path).unlink()
    assert sum(len(x) for x, _ in clean) == 3  # read from the cache the copies filled
