"""tf.data input pipelines over lists of image files."""

from __future__ import annotations

import logging
import typing
from pathlib import Path

import tensorflow as tf

from aiclassify.config import CacheMode
from aiclassify.data.augment import Augmenter
from aiclassify.data.layouts import Sample
from aiclassify.predict.crops import CROP_FACTOR
from aiclassify.preprocessing import decode_and_resize, decode_rgb, resize_square

logger = logging.getLogger(__name__)

CACHE_MODES = typing.get_args(CacheMode)
_CROP_SALT = 0x6372_6F70  # folds the example's seed for the train_crop position
_COPY_SALT = 0x636F_7079  # the fixed seeds of the degraded validation copies


def load_example(
    path: tf.Tensor, label: tf.Tensor, image_size: int, native: bool = False, centre_crop: bool = False
) -> tuple[tf.Tensor, tf.Tensor]:
    """Read and decode one file into a uint8 image and a float32 label.

    ``native``: keep an image at least ``image_size`` on both sides at its own size (for
    :func:`make_dataset`'s ``train_crop``); smaller ones are resized to ``image_size`` square.
    ``centre_crop``: an image whose shorter side is at least ``CROP_FACTOR`` x ``image_size`` (one
    that inference scores on native-resolution crops, :mod:`aiclassify.predict.crops`) becomes its
    centre ``image_size`` square at native resolution; smaller ones are resized, as inference does.
    """
    data = tf.io.read_file(path)
    if not native and not centre_crop:
        return decode_and_resize(data, image_size), tf.cast(label, tf.float32)
    image = decode_rgb(data)
    shape = tf.shape(image)
    shorter = tf.minimum(shape[0], shape[1])
    if native:
        image = tf.cond(shorter >= image_size, lambda: image, lambda: resize_square(image, image_size))
    else:
        image = tf.cond(
            shorter >= CROP_FACTOR * image_size,
            lambda: _centre_square(image, shape, image_size),
            lambda: resize_square(image, image_size),
        )
    return image, tf.cast(label, tf.float32)


def _centre_square(image: tf.Tensor, shape: tf.Tensor, size: int) -> tf.Tensor:
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return tf.ensure_shape(image[top : top + size, left : left + size], (size, size, 3))


def make_dataset(
    samples: list[Sample],
    image_size: int,
    batch_size: int,
    training: bool,
    seed: int,
    cache: CacheMode = "memory",
    cache_dir: Path | None = None,
    shuffle_buffer: int = 10_000,
    augment: Augmenter | None = None,
    train_crop: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batched (image uint8 0-255, label) pairs: parallel decode, cache, seeded shuffle, prefetch.

    ``drop_remainder``: drop the last partial batch, so that every batch holds ``batch_size``
    examples (training on several replicas: see :func:`aiclassify.train.trainer.prepare_data`).

    ``augment`` (see :func:`aiclassify.data.augment.make_augmenter`) is applied only when
    ``training``, after the cache and shuffle, with a per-example seed drawn from a stream
    seeded by ``seed`` that changes every epoch: the same seed gives the same batches.

    ``train_crop`` (``data.train_crop``, only when ``training``): an image at least
    ``image_size`` on both sides is decoded and cached at its native size and, every epoch, a
    random ``image_size`` square is cropped from it (seeded like ``augment``, before it), so the
    model sees the generator's traces at native resolution and cannot use the resampling a resize
    leaves as a size cue. Smaller images are resized up, as without it. The cache holds
    native-size images (more memory or disk than ``image_size`` squares). Validation and test then
    see what inference sees at the same scale: an image at least ``CROP_FACTOR`` x ``image_size``
    on its shorter side, which inference scores on a grid of native crops
    (:mod:`aiclassify.predict.crops`), is represented by its native centre crop; a smaller one is
    resized whole, as the exported signature does. Without this, a model trained on native crops
    would be validated on shrunk images it never saw, and early stopping would watch the wrong
    thing.

    ``samples`` are expected pre-shuffled (see ``load_splits``), so a bounded shuffle buffer
    after the cache still mixes the classes. Files that fail to decode are logged and dropped.
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}. Received: cache={cache!r}")
    if not samples:
        raise ValueError("Cannot build a dataset from an empty list of samples.")
    native = training and train_crop
    centre_crop = not training and train_crop
    paths = [s.path for s in samples]
    labels = [s.label for s in samples]
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(
        lambda path, label: load_example(path, label, image_size, native, centre_crop),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.ignore_errors(log_warning=True)
    if cache == "memory":
        dataset = dataset.cache()
    elif cache == "disk":
        if cache_dir is None:
            raise ValueError("cache='disk' needs a cache_dir.")
        cache_dir.mkdir(parents=True, exist_ok=True)
        for stale_lock in cache_dir.glob("*.lockfile"):
            stale_lock.unlink()
        dataset = dataset.cache(str(cache_dir / "images"))
    if training:
        dataset = dataset.shuffle(min(shuffle_buffer, len(samples)), seed=seed, reshuffle_each_iteration=True)
        if augment is not None or native:
            dataset = _augmented(dataset, augment, seed, image_size if native else None)
    batched = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return batched.prefetch(tf.data.AUTOTUNE).with_options(_data_sharding())


def _data_sharding() -> tf.data.Options:
    """Shard by batch, not by file, across the workers of ``MultiWorkerMirroredStrategy``.

    Each worker runs the whole pipeline and keeps its replicas' slices of every global batch of
    ``batch_size``; this is sound because the shuffle and augmentation seeds give every worker the
    same global batches. AUTO would try FILE sharding first and fall back to this, with a warning,
    since the source is a list of paths rather than files of records.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _augmented(
    dataset: tf.data.Dataset, augment: Augmenter | None, seed: int, crop_size: int | None
) -> tf.data.Dataset:
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def transform(image: tf.Tensor, op_seed: tf.Tensor) -> tf.Tensor:
        if crop_size is not None:
            crop_seed = tf.random.experimental.stateless_fold_in(op_seed, _CROP_SALT)
            image = tf.image.stateless_random_crop(image, (crop_size, crop_size, 3), crop_seed)
        return image if augment is None else augment(image, op_seed)

    return tf.data.Dataset.zip(dataset, seeds).map(
        lambda example, op_seed: (transform(example[0], op_seed), example[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def with_degraded_copies(
    dataset: tf.data.Dataset, degrade: Augmenter, seed: int, batch_size: int
) -> tf.data.Dataset:
    """``dataset`` (batched, not shuffled) with one degraded copy after each image.

    The copy of the i-th image is degraded with the fixed seed (``seed``, i), so every epoch sees
    the same copies. Built on ``dataset`` itself, so it shares that dataset's cache.
    """

    def pair(index: tf.Tensor, example: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        image, label = example
        copy_seed = tf.random.experimental.stateless_fold_in(
            tf.stack([tf.constant(seed, tf.int64), index]), _COPY_SALT
        )
        return tf.stack([image, degrade(image, copy_seed)]), tf.stack([label, label])

    copies = dataset.unbatch().enumerate().map(pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return copies.unbatch().batch(batch_size).prefetch(tf.data.AUTOTUNE)
