"""A small registry of pure Functional model builders.

Every model takes raw 0-255 RGB pixels (``Rescaling`` is its first layer, preceded only by an
optional forensic filter, see :mod:`aiclassify.filters`) and returns P(AI-generated) from a
float32 sigmoid, so it is numerically safe under mixed precision.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from keras import layers

from aiclassify.config import WHOLE_MODEL_SUFFIXES, Config, ModelConfig, ModelName
from aiclassify.filters import make_filter

logger = logging.getLogger(__name__)

ModelBuilder = Callable[..., keras.Model]
MODEL_NAMES: tuple[str, ...] = typing.get_args(ModelName)
_REGISTRY: dict[str, ModelBuilder] = {}
_NOT_OPTIONS = ("inputs", "filter_layer")
_NOT_BUILDER_FIELDS = ("name", "pretrained")  # model.* fields that are not builder options


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Add a builder to the registry under ``name``, one of :data:`aiclassify.config.ModelName`.

    A builder takes the input tensor, keyword-only options named after :class:`ModelConfig` fields
    with the same defaults, and ``filter_layer``.
    """
    if name not in MODEL_NAMES:
        raise ValueError(
            f"Model names must be declared in aiclassify.config.ModelName {list(MODEL_NAMES)}. "
            f"Received: name={name!r}"
        )

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


COMPOSITE_MODELS = ("ensemble",)  # built from finished runs (model.members), not from scratch


def standalone_model_names() -> list[str]:
    """The registered models a config builds from scratch: all but :data:`COMPOSITE_MODELS`."""
    return [name for name in model_names() if name not in COMPOSITE_MODELS]


def model_options(name: str) -> dict[str, Any]:
    """The options the model ``name`` takes, each with its default."""
    builder = _builder(name)
    return {
        parameter.name: parameter.default
        for parameter in inspect.signature(builder).parameters.values()
        if parameter.name not in _NOT_OPTIONS
    }


def build_model(
    name: str,
    image_size: int,
    channels: int = 3,
    *,
    filter_name: str = "none",
    filter_sigma: float = 1.0,
    filter_kernel_size: int = 3,
    **options: Any,
) -> keras.Model:
    """Build the registered model ``name`` for square ``image_size`` inputs.

    ``options`` go to the builder; each must be one it takes (see :func:`model_options`).
    ``filter_name`` (see :data:`aiclassify.filters.FILTER_NAMES`) inserts a fixed filter layer
    named ``filter`` between the input and ``Rescaling``; ``none`` builds the plain model.
    """
    builder = _builder(name)
    accepted = model_options(name)
    for option, value in options.items():
        if option not in accepted:
            raise ValueError(f"Model {name!r} does not take option {option!r}. Received: {option}={value!r}")
    filter_layer = make_filter(filter_name, sigma=filter_sigma, kernel_size=filter_kernel_size)
    inputs = keras.Input(shape=(image_size, image_size, channels), name="image")
    return builder(inputs, filter_layer=filter_layer, **options)


def build_from_config(config: Config) -> keras.Model:
    """Build ``config.model`` with the ``config.data`` image size and filter.

    The model gets the ``model.*`` options it takes. A config sets options for whichever model it
    names, and ``compare``/``study`` swap the model under one config, so an option the chosen
    model does not take is logged as unused (when it differs from the :class:`ModelConfig`
    default) instead of failing the run.
    """
    accepted = model_options(config.model.name)
    defaults = ModelConfig()
    options = {}
    for option in dataclasses.fields(ModelConfig):
        value = getattr(config.model, option.name)
        if option.name in accepted:
            options[option.name] = value
        elif option.name == "pretrained" and value == "imagenet":
            raise ValueError(
                f"{config.model.name} has no ImageNet weights: model.pretrained=imagenet needs one of "
                f"{imagenet_models()}. Received: pretrained={value!r}"
            )
        elif option.name not in _NOT_BUILDER_FIELDS and value != getattr(defaults, option.name):
            logger.warning("model.%s=%r is not used by %s; ignored.", option.name, value, config.model.name)
    return build_model(
        config.model.name,
        config.data.image_size,
        filter_name=config.data.filter,
        filter_sigma=config.data.filter_sigma,
        filter_kernel_size=config.data.filter_kernel_size,
        **options,
    )


def imagenet_models() -> list[str]:
    """Registered models whose builder takes ``pretrained`` (ImageNet backbones)."""
    return [name for name in model_names() if "pretrained" in model_options(name)]


def load_weights_strictly(model: keras.Model, path: Path, holds: str, pretrained: str) -> None:
    """``model.load_weights(path)``, or ValueError saying the file does not hold ``holds`` when any
    layer of it does not match (Keras only warns then, and leaves that layer as built)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Skipping", category=UserWarning)
        try:
            model.load_weights(str(path))
        except (ValueError, UserWarning) as error:
            raise ValueError(
                f"model.pretrained: {path} does not hold {holds}: {error}. "
                f"Received: pretrained={pretrained!r}"
            ) from error


def load_pretrained(model: keras.Model, pretrained: str) -> keras.Model:
    """Load a whole-model ``model.pretrained`` file into ``model``; other values leave it as built.

    A whole-model file (``.keras`` or ``.weights.h5``) must hold weights of the same architecture
    and input size, every layer of it: a file that leaves any layer as built is an error, not a
    partial start. ``imagenet``, Keras Applications ``.h5`` files and a keras-hub model's
    backbone-only ``.weights.h5`` files are the builder's (:mod:`aiclassify.backbones`).
    """
    if not pretrained.endswith(WHOLE_MODEL_SUFFIXES):
        return model
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained: no weights file at {path}. Received: pretrained={pretrained!r}"
        )
    from aiclassify.backbones import HUB_BACKBONES, is_backbone_weights_file

    if model.name in HUB_BACKBONES and path.name.endswith(".weights.h5") and is_backbone_weights_file(path):
        return model  # its builder loaded the file into the backbone
    load_weights_strictly(model, path, f"weights of this {model.name} model", pretrained)
    logger.info("Loaded starting weights from %s", path)
    return model


def _builder(name: str) -> ModelBuilder:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model name. Valid names: {model_names()}. Received: name={name!r}")
    return _REGISTRY[name]


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


def probability_output(x: keras.KerasTensor) -> keras.KerasTensor:
    """The float32 sigmoid ``probability_ai`` on ``x`` (safe under mixed precision)."""
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="probability_ai")(x)


def _check_spatial(inputs: keras.KerasTensor, final_size: int, name: str) -> None:
    if final_size < 1:
        raise ValueError(
            f"Input too small for {name}: the feature map vanishes before the classifier. "
            f"Received: image_size={inputs.shape[1]}"
        )


def check_dropout(dropout: float) -> None:
    """Reject a dropout rate outside [0, 1)."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")


def _check_padding(padding: str) -> None:
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid'. Received: padding={padding!r}")


def _check_bn_momentum(bn_momentum: float) -> None:
    if not 0.0 < bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in (0, 1). Received: bn_momentum={bn_momentum}")


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
    *,
    dropout: float = 0.5,
    bn_momentum: float = 0.99,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """The published five-block CNN: 17,566,241 parameters at 224x224x3."""
    check_dropout(dropout)
    _check_bn_momentum(bn_momentum)
    _check_spatial(inputs, inputs.shape[1] // 32, "cnn5")
    x = _rescaled(inputs, filter_layer)
    for block, filters in enumerate((32, 64, 128, 256, 512), start=1):
        x = apply_conv_block(x, filters, convs=2, block=block, bn_momentum=bn_momentum)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(512, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, probability_output(x), name="cnn5")


def lenet(
    inputs: keras.KerasTensor,
    convs_per_stage: int,
    name: str,
    *,
    bn_momentum: float = 0.99,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """LeNet for RGB input: two stages of ``convs_per_stage`` x (Conv 5x5 valid + ReLU, BatchNorm)
    then MaxPool 2x2 (6, then 16 filters), Dense 120 and 84."""
    _check_bn_momentum(bn_momentum)
    shrink = 4 * convs_per_stage  # each valid 5x5 convolution takes 4 pixels off the side
    _check_spatial(inputs, ((inputs.shape[1] - shrink) // 2 - shrink) // 2, name)
    x = _rescaled(inputs, filter_layer)
    for block, filters in enumerate((6, 16), start=1):
        for index in range(1, convs_per_stage + 1):
            x = layers.Conv2D(filters, 5, activation="relu", name=f"block{block}_conv{index}")(x)
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{block}_bn{index}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    return keras.Model(inputs, probability_output(x), name=name)


@register("lenet5")
def lenet5(
    inputs: keras.KerasTensor,
    *,
    bn_momentum: float = 0.99,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """LeNet-5 for RGB input, with BatchNorm after each convolution (:func:`lenet`)."""
    return lenet(inputs, 1, "lenet5", bn_momentum=bn_momentum, filter_layer=filter_layer)


@register("lenet2")
def lenet2(
    inputs: keras.KerasTensor,
    *,
    bn_momentum: float = 0.99,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """LeNet with both convolution layers doubled: two Conv 5x5 per stage (6, 6, then 16, 16
    filters); otherwise :func:`lenet5`."""
    return lenet(inputs, 2, "lenet2", bn_momentum=bn_momentum, filter_layer=filter_layer)


@register("cnn_small_nopool")
def cnn_small_nopool(
    inputs: keras.KerasTensor,
    *,
    dropout: float = 0.5,
    padding: str = "same",
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """:func:`cnn_small` with two Conv 3x3 stages (16, 32 filters) and no pooling.

    Without pooling, Dense 64 sees every position: the parameter count grows with the square of the
    input side (about 2.1 million at 32x32, 100 million at 224x224), so it suits small inputs.
    """
    check_dropout(dropout)
    _check_padding(padding)
    _check_spatial(inputs, inputs.shape[1] - (4 if padding == "valid" else 0), "cnn_small_nopool")
    x = _rescaled(inputs, filter_layer)
    for block, filters in enumerate((16, 32), start=1):
        x = layers.Conv2D(filters, 3, padding=padding, activation="relu", name=f"block{block}_conv1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, probability_output(x), name="cnn_small_nopool")


def cnn_small(
    inputs: keras.KerasTensor,
    conv_layers: int,
    *,
    dropout: float = 0.5,
    padding: str = "same",
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """A baseline of ``conv_layers`` Conv 3x3 + MaxPool stages (16, 32, 64, 128 filters)."""
    check_dropout(dropout)
    _check_padding(padding)
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
    return keras.Model(inputs, probability_output(x), name=name)


def _register_cnn_small(conv_layers: int) -> ModelBuilder:
    def builder(
        inputs: keras.KerasTensor,
        *,
        dropout: float = 0.5,
        padding: str = "same",
        filter_layer: keras.layers.Layer | None = None,
    ) -> keras.Model:
        return cnn_small(inputs, conv_layers, dropout=dropout, padding=padding, filter_layer=filter_layer)

    builder.__name__ = builder.__qualname__ = f"cnn_small{conv_layers}"
    builder.__doc__ = f":func:`cnn_small` with {conv_layers} Conv 3x3 + MaxPool stages."
    return register(f"cnn_small{conv_layers}")(builder)


cnn_small2 = _register_cnn_small(2)
cnn_small3 = _register_cnn_small(3)
cnn_small4 = _register_cnn_small(4)

# The ImageNet backbones and the ensemble of finished runs register themselves into the registry above.
from aiclassify import backbones, ensemble  # noqa: E402, F401

# So do the scikit-learn baselines' Keras forms (their custom layers too, for load_keras_model).
from aiclassify.classical import cooccurrence, keras_models  # noqa: E402, F401
