"""``cooccurrence_logistic``: residual co-occurrence features + logistic regression.

The features are those of rich-model steganalysis (Fridrich & Kodovsky 2012) as Nataraj et al. 2019
used them to detect GAN images, reduced to a small fixed set: for each colour channel, the
second-order residual ``c[x-1] - 2 c[x] + c[x+1]`` along rows and along columns, rounded and clipped
to ``[-T, T]``, and the normalised histogram of the pairs of horizontally and vertically adjacent
quantised residuals (``(2T+1)^2`` bins per channel and residual); plus a normalised histogram of the
HSV saturation. :class:`CooccurrenceFeatures` computes them with ``keras.ops`` only, in float64; a
``StandardScaler`` and a ``LogisticRegression`` fitted by scikit-learn on them are written into the
:class:`~aiclassify.classical.keras_models.Standardize` and ``probability_ai`` layers after it.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from aiclassify.classical.keras_models import FEATURES_LAYER, STANDARDIZE_LAYER, Standardize, _probability
from aiclassify.models import register

CHANNELS = ("r", "g", "b", "cb", "cr", "s")
"""The channels :class:`CooccurrenceFeatures` can take residuals of: RGB, the Cb and Cr of YCbCr
(ITU-R BT.601 full range, as JPEG) and the HSV saturation, each on a 0-255 scale."""
MIN_SIZE = 4  # a second-order residual and a pair of it need 4 pixels along each side


@keras.saving.register_keras_serializable(package="aiclassify")
class CooccurrenceFeatures(layers.Layer):
    """Residual co-occurrence histograms and a saturation histogram of raw 0-255 RGB images.

    Input ``(batch, height, width, 3)``; output ``(batch, len(channels) * 2 * (2 * threshold + 1)^2
    + saturation_bins)``: for each of ``channels`` (see :data:`CHANNELS`), in that order, the
    histogram of the horizontal residual then that of the vertical one, each over the
    ``(q[y, x], q[y, x + 1])`` and ``(q[y, x], q[y + 1, x])`` pairs of the residual ``q`` rounded
    (half to even) and clipped to ``[-threshold, threshold]``, bin ``(q1 + T) * (2T + 1) + q2 + T``,
    summing to 1; then ``saturation_bins`` equal bins of the saturation over ``[0, 256)``, summing to
    1 (none when 0). Computed in the layer's dtype (build it with ``dtype="float64"``).

    Args:
        threshold: the residual clip ``T`` (at least 1); ``2T + 1`` quantisation levels.
        channels: the channels whose residuals are histogrammed, names of :data:`CHANNELS`.
        saturation_bins: bins of the saturation histogram (0: no saturation histogram).
    """

    def __init__(
        self, threshold: int = 2, channels: tuple[str, ...] = CHANNELS, saturation_bins: int = 16, **kwargs
    ):
        super().__init__(**kwargs)
        channels = tuple(channels)
        if int(threshold) != threshold or threshold < 1:
            raise ValueError(f"threshold must be an integer of at least 1. Received: threshold={threshold}")
        if not channels or len(set(channels)) != len(channels) or not set(channels) <= set(CHANNELS):
            raise ValueError(
                f"channels must be distinct names of {list(CHANNELS)}. Received: channels={list(channels)}"
            )
        if int(saturation_bins) != saturation_bins or saturation_bins < 0:
            raise ValueError(
                f"saturation_bins must be a non-negative integer. Received: saturation_bins={saturation_bins}"
            )
        self.threshold = int(threshold)
        self.channels = channels
        self.saturation_bins = int(saturation_bins)
        self.levels = 2 * self.threshold + 1

    def build(self, input_shape):
        height, width, depth = input_shape[1:]
        if depth != 3 or height is None or width is None or min(height, width) < MIN_SIZE:
            raise ValueError(
                f"{type(self).__name__} takes RGB images of at least {MIN_SIZE}x{MIN_SIZE} pixels. "
                f"Received: input_shape={tuple(input_shape)}"
            )

    def _channel(self, name: str, red, green, blue):
        if name == "r":
            return red
        if name == "g":
            return green
        if name == "b":
            return blue
        if name == "cb":
            return 128.0 - 0.168736 * red - 0.331264 * green + 0.5 * blue
        if name == "cr":
            return 128.0 + 0.5 * red - 0.418688 * green - 0.081312 * blue
        return _saturation(red, green, blue)

    def _pair_counts(self, quantised):
        """Counts ``(batch, channels, levels^2)`` of the adjacent pairs of ``quantised`` (0..levels-1)."""
        levels, depth = self.levels, len(self.channels)
        offsets = ops.arange(depth, dtype="int32") * levels * levels  # one block of bins per channel
        horizontal = quantised[:, :, :-1] * levels + quantised[:, :, 1:] + offsets
        vertical = quantised[:, :-1] * levels + quantised[:, 1:] + offsets
        batch = ops.shape(quantised)[0]
        pairs = ops.concatenate([ops.reshape(horizontal, (batch, -1)), ops.reshape(vertical, (batch, -1))], 1)
        counts = ops.bincount(pairs, minlength=depth * levels * levels)
        return ops.reshape(counts, (batch, depth, levels * levels))

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        red, green, blue = x[..., 0], x[..., 1], x[..., 2]
        stacked = ops.stack([self._channel(name, red, green, blue) for name in self.channels], axis=-1)
        limit = float(self.threshold)
        groups = []
        for residual in (
            stacked[:, :, :-2] - 2.0 * stacked[:, :, 1:-1] + stacked[:, :, 2:],
            stacked[:, :-2] - 2.0 * stacked[:, 1:-1] + stacked[:, 2:],
        ):
            quantised = ops.cast(ops.clip(ops.round(residual), -limit, limit) + limit, "int32")
            groups.append(self._pair_counts(quantised))
        counts = ops.cast(ops.stack(groups, axis=2), self.compute_dtype)  # (batch, channels, 2, levels^2)
        histograms = counts / ops.sum(counts, axis=-1, keepdims=True)
        features = [ops.reshape(histograms, (ops.shape(x)[0], -1))]
        if self.saturation_bins:
            bins = ops.floor(_saturation(red, green, blue) * (self.saturation_bins / 256.0))
            bins = ops.cast(ops.clip(bins, 0.0, self.saturation_bins - 1.0), "int32")
            hist = ops.bincount(ops.reshape(bins, (ops.shape(x)[0], -1)), minlength=self.saturation_bins)
            hist = ops.cast(hist, self.compute_dtype)
            features.append(hist / ops.sum(hist, axis=-1, keepdims=True))
        return ops.concatenate(features, axis=-1)

    def description(self) -> str:
        """What the features are, in words (for metadata.json)."""
        bins = self.saturation_bins
        saturation = f", and a {bins}-bin saturation histogram" if bins else ""
        return (
            f"co-occurrence histograms of second-order residuals quantised to [-{self.threshold}, "
            f"{self.threshold}] of {', '.join(self.channels)}{saturation}"
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.channels) * 2 * self.levels**2 + self.saturation_bins)

    def get_config(self):
        return {
            **super().get_config(),
            "threshold": self.threshold,
            "channels": list(self.channels),
            "saturation_bins": self.saturation_bins,
        }


def _saturation(red, green, blue):
    """HSV saturation on a 0-255 scale: ``255 * (max - min) / max``, 0 where ``max`` is 0."""
    high = ops.maximum(ops.maximum(red, green), blue)
    low = ops.minimum(ops.minimum(red, green), blue)
    return ops.where(high > 0, 255.0 * (high - low) / ops.maximum(high, 1e-12), ops.zeros_like(high))


@register("cooccurrence_logistic")
def cooccurrence_logistic(
    inputs: keras.KerasTensor, *, filter_layer: keras.layers.Layer | None = None
) -> keras.Model:
    """Logistic regression on the standardised :class:`CooccurrenceFeatures` of the 0-255 pixels
    (unfitted: 0.5 everywhere; :func:`~aiclassify.classical.keras_models.set_logistic_weights`)."""
    x = inputs if filter_layer is None else filter_layer(inputs)
    # The features take 0-255 pixels (as backbone_svm's identity "rescale").
    x = layers.Identity(name="rescale")(x)
    x = CooccurrenceFeatures(dtype="float64", name=FEATURES_LAYER)(x)
    x = Standardize(dtype="float64", name=STANDARDIZE_LAYER)(x)
    return keras.Model(inputs, _probability(x), name="cooccurrence_logistic")
