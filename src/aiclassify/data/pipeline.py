"""tf.data input pipelines over lists of image files."""

from __future__ import annotations

import logging
import typing
from pathlib import Path

import tensorflow as tf

from aiclassify.config import CacheMode
from aiclassify.data.augment import Augmenter
from aiclassify.data.layouts import Sample
from aiclassify.preprocessing import decode_and_resize

logger = logging.getLogger(__name__)

CACHE_MODES = typing.get_args(CacheMode)


def load_example(path: tf.Tensor, label: tf.Tensor, image_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Read and decode one file into a uint8 image and a float32 label."""
    image = decode_and_resize(tf.io.read_file(path), image_size)
    return image, tf.cast(label, tf.float32)


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
) -> tf.data.Dataset:
    """Batched (image uint8 0-255, label) pairs: parallel decode, cache, seeded shuffle, prefetch.

    ``augment`` (see :func:`aiclassify.data.augment.make_augmenter`) is applied only when
    ``training``, after the cache and shuffle, with a per-example seed drawn from a stream
    seeded by ``seed`` that changes every epoch: the same seed gives the same batches.

    ``samples`` are expected pre-shuffled (see ``load_splits``), so a bounded shuffle buffer
    after the cache still mixes the classes. Files that fail to decode are logged and dropped.
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}. Received: cache={cache!r}")
    if not samples:
        raise ValueError("Cannot build a dataset from an empty list of samples.")
    paths = [s.path for s in samples]
    labels = [s.label for s in samples]
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(
        lambda path, label: load_example(path, label, image_size),
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
        if augment is not None:
            dataset = _augmented(dataset, augment, seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _augmented(dataset: tf.data.Dataset, augment: Augmenter, seed: int) -> tf.data.Dataset:
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(dataset, seeds).map(
        lambda example, op_seed: (augment(example[0], op_seed), example[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
