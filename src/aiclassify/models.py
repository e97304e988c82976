"""A small registry of pure Functional model builders.

Every model takes raw 0-255 RGB pixels (``Rescaling`` is its first layer, preceded only by an
optional forensic filter, see :mod:`aiclassify.filters`) and returns P(AI-generated) from a
float32 sigmoid, so it is numerically safe under mixed precision.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import keras
from keras import layers

from aiclassify.filters import make_filter

ModelBuilder = Callable[..., keras.Model]
_REGISTRY: dict[str, ModelBuilder] = {}


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Add a builder to the registry under ``name``."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        _REGISTRY[name] = builder
        return builder

    return decorator


def load_keras_model(path) -> keras.Model:
    """Load a saved ``.keras`` model; importing this module registers the project's custom layers."""
    return keras.saving.load_model(path, compile=False)


def model_names() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(_REGISTRY)


def build_model(
    name: str,
    image_size: int,
    channels: int = 3,
    dropout: float = 0.5,
    padding: str = "same",
    bn_momentum: float = 0.99,
    filter_name: str = "none",
    filter_sigma: float = 1.0,
    filter_kernel_size: int = 3,
) -> keras.Model:
    """Build the registered model ``name`` for square ``image_size`` inputs.

    ``filter_name`` (see :data:`aiclassify.filters.FILTER_NAMES`) inserts a fixed filter layer
    named ``filter`` between the input and ``Rescaling``; ``none`` builds the plain model.
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model name. Valid names: {model_names()}. Received: name={name!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid'. Received: padding={padding!r}")
    if not 0.0 < bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in (0, 1). Received: bn_momentum={bn_momentum}")
    filter_layer = make_filter(filter_name, sigma=filter_sigma, kernel_size=filter_kernel_size)
    inputs = keras.Input(shape=(image_size, image_size, channels), name="image")
    return _REGISTRY[name](
        inputs, dropout=dropout, padding=padding, bn_momentum=bn_momentum, filter_layer=filter_layer
    )


def replace_filter(
    model: keras.Model, filter_name: str, filter_sigma: float = 1.0, filter_kernel_size: int = 3
) -> keras.Model:
    """``model`` with its input filter replaced by ``filter_name``, sharing every other trained layer.

    The layer named ``filter`` is swapped for the new one, removed for ``none``, or inserted after
    the input when the model has none; all other layers (and so their weights) are reused, not
    copied. Raises ``ValueError`` when the new filter's output has a different number of channels
    than the trained layers expect.
    """
    new_filter = make_filter(filter_name, sigma=filter_sigma, kernel_size=filter_kernel_size)
    names = [layer.name for layer in model.layers]
    old_filter = model.get_layer("filter") if "filter" in names else None
    (inputs,) = model.inputs
    expected = (old_filter.output if old_filter is not None else inputs).shape[-1]
    new_inputs = keras.Input(batch_shape=inputs.shape, dtype=inputs.dtype, name=names[0])
    filtered = new_inputs if new_filter is None else new_filter(new_inputs)
    if filtered.shape[-1] != expected:
        raise ValueError(
            f"Filter {filter_name!r} gives {filtered.shape[-1]} channels but the trained layers of "
            f"{model.name!r} expect {expected}. Received: filter={filter_name!r}"
        )

    def call(layer, *args, **kwargs):
        if layer is old_filter:
            return filtered
        if old_filter is None:  # insert the filter between the input and its consumers
            args = tuple(filtered if arg is new_inputs else arg for arg in args)
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model, input_tensors=new_inputs, clone_function=lambda layer: layer, call_function=call
    )


def _rescaled(inputs: keras.KerasTensor, filter_layer: keras.layers.Layer | None = None) -> keras.KerasTensor:
    x = inputs if filter_layer is None else filter_layer(inputs)
    return layers.Rescaling(1.0 / 255.0, name="rescale")(x)


def _probability(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="probability_ai")(x)


def _check_spatial(inputs: keras.KerasTensor, final_size: int, name: str) -> None:
    if final_size < 1:
        raise ValueError(
            f"Input too small for {name}: the feature map vanishes before the classifier. "
            f"Received: image_size={inputs.shape[1]}"
        )


def apply_conv_block(
    x: keras.KerasTensor,
    filters: int,
    convs: int,
    block: int,
    padding: str = "same",
    bn_momentum: float = 0.99,
) -> keras.KerasTensor:
    """``convs`` x (Conv 3x3 + ReLU, then BatchNorm), then MaxPool 2x2; layers named ``block{i}_*``."""
    for index in range(1, convs + 1):
        x = layers.Conv2D(filters, 3, padding=padding, activation="relu", name=f"block{block}_conv{index}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{block}_bn{index}")(x)
    return layers.MaxPooling2D(2, name=f"block{block}_pool")(x)


@register("cnn5")
def cnn5(
    inputs: keras.KerasTensor,
    dropout: float = 0.5,
    padding: str = "same",
    bn_momentum: float = 0.99,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """The published five-block CNN: 17,566,241 parameters at 224x224x3."""
    _check_spatial(inputs, inputs.shape[1] // 32, "cnn5")
    x = _rescaled(inputs, filter_layer)
    for block, filters in enumerate((32, 64, 128, 256, 512), start=1):
        x = apply_conv_block(x, filters, convs=2, block=block, bn_momentum=bn_momentum)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(512, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _probability(x), name="cnn5")


@register("lenet5")
def lenet5(
    inputs: keras.KerasTensor,
    dropout: float = 0.5,
    padding: str = "same",
    bn_momentum: float = 0.99,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """LeNet-5 for RGB input, with BatchNorm after each convolution."""
    _check_spatial(inputs, ((inputs.shape[1] - 4) // 2 - 4) // 2, "lenet5")
    x = _rescaled(inputs, filter_layer)
    for block, filters in enumerate((6, 16), start=1):
        x = layers.Conv2D(filters, 5, activation="relu", name=f"block{block}_conv1")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{block}_bn1")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    return keras.Model(inputs, _probability(x), name="lenet5")


def cnn_small(
    inputs: keras.KerasTensor,
    conv_layers: int,
    dropout: float = 0.5,
    padding: str = "same",
    bn_momentum: float = 0.99,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """A baseline of ``conv_layers`` Conv 3x3 + MaxPool stages (16, 32, 64, 128 filters)."""
    name = f"cnn_small{conv_layers}"
    size = inputs.shape[1]
    for _ in range(conv_layers):
        size = (size - (2 if padding == "valid" else 0)) // 2
    _check_spatial(inputs, size, name)
    x = _rescaled(inputs, filter_layer)
    for block, filters in enumerate((16, 32, 64, 128)[:conv_layers], start=1):
        x = layers.Conv2D(filters, 3, padding=padding, activation="relu", name=f"block{block}_conv1")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _probability(x), name=name)


for _conv_layers in (2, 3, 4):
    register(f"cnn_small{_conv_layers}")(functools.partial(cnn_small, conv_layers=_conv_layers))
