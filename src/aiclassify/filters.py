"""Forensic input filters: fixed (non-trainable) Keras layers placed inside the model.

A filter is the model's first layer after the input, *before* ``Rescaling``: it sees raw
0-255 RGB pixels and returns 3 channels (on the same scale, or signed residuals for SRM), so
training, evaluation, the exported SavedModel and serving all apply the same transform. Filters
compute in float32 (also under mixed precision) and use reflect padding, so borders carry no
artificial edges. They are written with ``keras.ops`` only, so they build and run on any Keras
backend (TensorFlow, JAX, PyTorch).
"""

from __future__ import annotations

import typing

import keras
import numpy as np
from keras import ops

from aiclassify.config import FilterName

FILTER_NAMES: tuple[str, ...] = typing.get_args(FilterName)

# The three SRM high-pass kernels of Zhou et al. 2018 (RGB-N noise stream), normalised as there
# (by 4, 12 and 2): the 3x3 "KB" square, the 5x5 "KV" square and the horizontal [1, -2, 1] line.
# Each sums to zero, so a constant image has zero residual.
SRM_KERNELS = np.array(
    [
        np.array(
            [
                [0, 0, 0, 0, 0],
                [0, -1, 2, -1, 0],
                [0, 2, -4, 2, 0],
                [0, -1, 2, -1, 0],
                [0, 0, 0, 0, 0],
            ]
        )
        / 4.0,
        np.array(
            [
                [-1, 2, -2, 2, -1],
                [2, -6, 8, -6, 2],
                [-2, 8, -12, 8, -2],
                [2, -6, 8, -6, 2],
                [-1, 2, -2, 2, -1],
            ]
        )
        / 12.0,
        np.array(
            [
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
                [0, 1, -2, 1, 0],
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0],
            ]
        )
        / 2.0,
    ],
    dtype=np.float32,
)


def _check_kernel_size(kernel_size: int) -> None:
    valid = isinstance(kernel_size, int) and not isinstance(kernel_size, bool)
    if not valid or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1. Received: kernel_size={kernel_size!r}")


def _reflect_pad(images, pad: int):
    return ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")


class _Filter(keras.layers.Layer):
    """Base class: a stateless float32 image transform of (batch, height, width, 3) pixels."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.trainable = False

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="aiclassify")
class GrayWorld(_Filter):
    """Gray World colour constancy: scale each channel so its mean equals the mean over channels.

    Per image. Values are not clipped, so the output may exceed 255; a channel whose mean is 0
    stays 0.
    """

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        means = ops.mean(x, axis=(1, 2), keepdims=True)
        target = ops.mean(means, axis=-1, keepdims=True)
        return x * ops.divide_no_nan(target, means)


@keras.saving.register_keras_serializable(package="aiclassify")
class GaussianBlur(_Filter):
    """Depthwise convolution with a fixed, normalised ``kernel_size`` Gaussian of std ``sigma``."""

    def __init__(self, sigma: float = 1.0, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        _check_kernel_size(kernel_size)
        if not (isinstance(sigma, int | float) and not isinstance(sigma, bool) and sigma > 0):
            raise ValueError(f"sigma must be a positive number. Received: sigma={sigma!r}")
        self.sigma = float(sigma)
        self.kernel_size = kernel_size

    def kernel(self) -> np.ndarray:
        """The (k, k) Gaussian weights, summing to 1."""
        offsets = np.arange(self.kernel_size) - self.kernel_size // 2
        line = np.exp(-(offsets**2) / (2.0 * self.sigma**2))
        square = np.outer(line, line)
        return (square / square.sum()).astype(np.float32)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        weights = np.repeat(self.kernel()[:, :, None, None], channels, axis=2)
        kernel = ops.convert_to_tensor(weights, dtype=self.compute_dtype)
        padded = _reflect_pad(x, self.kernel_size // 2)
        return ops.depthwise_conv(padded, kernel, strides=1, padding="valid")

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="aiclassify")
class MedianBlur(_Filter):
    """Per-channel median over each ``kernel_size`` x ``kernel_size`` neighbourhood."""

    def __init__(self, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        _check_kernel_size(kernel_size)
        self.kernel_size = kernel_size

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        k = self.kernel_size
        padded = _reflect_pad(x, k // 2)
        # Window offset i keeps padded rows i .. i + height - 1: it drops k - 1 - i rows at the end.
        shifted = [
            padded[:, i : (i - (k - 1)) or None, j : (j - (k - 1)) or None, :]
            for i in range(k)
            for j in range(k)
        ]
        window = ops.stack(shifted, axis=-1)  # (batch, height, width, channels, k*k)
        largest, _ = ops.top_k(window, k=k * k // 2 + 1, sorted=True)
        return largest[..., -1]

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="aiclassify")
class SRMResidual(_Filter):
    """The 3 SRM high-pass residuals of the grayscale image (the mean of R, G and B).

    Output channel ``i`` is ``SRM_KERNELS[i]`` convolved with the channel mean, with reflect
    padding, so a constant image gives exactly zero everywhere. This equals Zhou et al.'s noise
    stream (each kernel copied over the 3 input channels and summed) divided by 3.
    """

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        gray = ops.mean(x, axis=-1, keepdims=True)
        kernel = ops.convert_to_tensor(
            np.transpose(SRM_KERNELS, (1, 2, 0))[:, :, None, :], self.compute_dtype
        )
        return ops.conv(_reflect_pad(gray, 2), kernel, strides=1, padding="valid")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def make_filter(name: str, sigma: float = 1.0, kernel_size: int = 3) -> keras.layers.Layer | None:
    """The filter layer (named ``filter``) for ``data.filter``, or None for ``none``."""
    if name not in FILTER_NAMES:
        raise ValueError(f"Unknown filter. Valid names: {list(FILTER_NAMES)}. Received: filter={name!r}")
    if name == "gray_world":
        return GrayWorld(name="filter")
    if name == "gaussian_blur":
        return GaussianBlur(sigma=sigma, kernel_size=kernel_size, name="filter")
    if name == "median_blur":
        return MedianBlur(kernel_size=kernel_size, name="filter")
    if name == "srm":
        return SRMResidual(name="filter")
    return None
