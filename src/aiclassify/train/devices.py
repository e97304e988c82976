"""Devices, precision and distribution strategy of a training run."""

from __future__ import annotations

import contextlib
import logging

import tensorflow as tf

from aiclassify.config import DistributeStrategy, Precision

logger = logging.getLogger("aiclassify.train")


def enable_gpu_memory_growth() -> list:
    """Let TensorFlow grow GPU memory as needed (a 4 GB card fits nothing else otherwise)."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised: the setting is fixed
            tf.config.experimental.set_memory_growth(gpu, True)
    return gpus


def choose_precision(requested: Precision, has_gpu: bool) -> Precision:
    """The dtype policy to train with: mixed float16 only where a GPU makes it pay."""
    if requested == "mixed_float16" and not has_gpu:
        logger.warning("No GPU found: mixed_float16 is slow on CPU, so this run trains in float32.")
        return "float32"
    return requested


def make_strategy(name: DistributeStrategy) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``train.distribute`` .

    ``mirrored`` replicates over every GPU, or over the logical CPU devices where there is none;
    ``multi_worker`` reads the cluster from ``TF_CONFIG``.
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.MultiWorkerMirroredStrategy()
