"""A cheap stand-in for the configured feature backbone, for the backbone_svm tests."""

from __future__ import annotations

import keras


def tiny_extractor(name: str, image_size: int, pretrained: str, resize_to: int = 0) -> keras.Model:
    """A small seeded CNN with the feature-extractor interface: 0-255 pixels in, pooled vector out."""
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(0))(
        x
    )
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=f"{name}_features")
