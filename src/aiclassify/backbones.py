"""ImageNet backbones from ``keras.applications`` with this project's input and head.

Each builder takes raw 0-255 RGB pixels like every model here: the backbone's own ImageNet
preprocessing is a layer inside the model (:class:`ImagenetPreprocessing`, or EfficientNet's
built-in one), an optional ``resize_to`` upsamples small inputs inside the model (the CIFAKE
fine-tuning studies fed 32x32 images to 224x224 networks), and the head is global average
pooling, Dropout and a float32 sigmoid, so mixed precision is safe. The backbone's layers are part
of the model's own graph (``input_tensor``), so Grad-CAM finds its last convolution and
:func:`freeze_backbone` can freeze or unfreeze them one by one.

``pretrained``: ``none`` (random weights, no download), ``imagenet`` (Keras downloads the weights
once into ``~/.keras/models``; without a network the error names the file to fetch and where to
put it), or a path to a Keras Applications weights file (``.h5``, e.g. that file fetched by hand:
the offline route). Whole-model files (``.keras``, ``.weights.h5``) are loaded after the build by
:func:`aiclassify.models.load_pretrained`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers, ops

from aiclassify.config import WHOLE_MODEL_SUFFIXES
from aiclassify.models import check_dropout, probability_output, register

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
MIN_BACKBONE_SIDE = 32


@keras.saving.register_keras_serializable(package="aiclassify")
class ImagenetPreprocessing(layers.Layer):
    """The ImageNet input normalisation of a Keras Application, on 0-255 RGB pixels.

    ``caffe`` (VGG16, ResNet50): RGB to BGR, minus the ImageNet mean in 0-255 units; ``torch``
    (DenseNet121): scaled to [0, 1], minus the ImageNet mean, divided by its standard deviation.
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "torch"):
            raise ValueError(f"mode must be 'caffe' or 'torch'. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        mean = ops.convert_to_tensor(IMAGENET_MEAN_RGB, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(IMAGENET_STD_RGB, dtype=self.compute_dtype)
        return (x / 255.0 - mean) / std

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class PretrainedWeightsUnavailableError(RuntimeError):
    """ImageNet weights could not be downloaded; the message says which file to fetch and where."""


def keras_weights_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def _application(
    name: str,
    application: Callable[..., keras.Model],
    preprocessing: str | None,
    inputs: keras.KerasTensor,
    *,
    dropout: float,
    pretrained: str,
    resize_to: int,
    filter_layer: keras.layers.Layer | None,
) -> keras.Model:
    check_dropout(dropout)
    if resize_to and resize_to < MIN_BACKBONE_SIDE:
        raise ValueError(
            f"resize_to must be 0 (no resize) or at least {MIN_BACKBONE_SIDE}. "
            f"Received: resize_to={resize_to}"
        )
    side = resize_to or inputs.shape[1]
    if side < MIN_BACKBONE_SIDE:
        raise ValueError(
            f"Input too small for {name}: it needs {MIN_BACKBONE_SIDE}x{MIN_BACKBONE_SIDE} or more; set "
            f"model.resize_to to upsample inside the model. Received: image_size={inputs.shape[1]}"
        )
    x = inputs if filter_layer is None else filter_layer(inputs)
    if resize_to and resize_to != inputs.shape[1]:
        x = layers.Resizing(resize_to, resize_to, interpolation="bilinear", name="upsample")(x)
    x = (
        ImagenetPreprocessing(preprocessing, name="rescale")(x)
        if preprocessing
        else layers.Identity(name="rescale")(x)
    )
    backbone = application(
        include_top=False, weights=_weights_argument(pretrained), input_tensor=x, name=f"{name}_backbone"
    )
    x = layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, probability_output(x), name=name)


def _weights_argument(pretrained: str) -> str | None:
    """The ``weights`` argument of a Keras Application for ``model.pretrained``."""
    if pretrained == "imagenet":
        return "imagenet"
    if pretrained == "none" or pretrained.endswith(WHOLE_MODEL_SUFFIXES):
        return None  # whole-model files are loaded after the build
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained: no weights file at {path}. Received: pretrained={pretrained!r}"
        )
    return str(path)


def _build(
    name: str, application: Callable[..., keras.Model], preprocessing: str | None, **kwargs
) -> keras.Model:
    try:
        return _application(name, application, preprocessing, **kwargs)
    except Exception as error:
        if kwargs["pretrained"] != "imagenet" or "URL fetch failure" not in str(error):
            raise
        match = re.search(r"URL fetch failure on (\S+?):? ", str(error))
        url = match.group(1) if match else "the weights URL in the error below"
        target = keras_weights_dir() / url.rsplit("/", 1)[-1]
        raise PretrainedWeightsUnavailableError(
            f"ImageNet weights for {name} could not be downloaded (no network?). Fetch {url} on a machine "
            f"with internet and put it at {target} (then model.pretrained=imagenet works offline), or set "
            f"model.pretrained to the file's path. Cause: {error}"
        ) from error


def _register_application(
    name: str, application: Callable[..., keras.Model], preprocessing: str | None, description: str
) -> Callable[..., keras.Model]:
    """Register the builder ``name``: ``application`` with :func:`_application`'s input and head."""

    def builder(
        inputs: keras.KerasTensor,
        *,
        dropout: float = 0.5,
        pretrained: str = "none",
        resize_to: int = 0,
        filter_layer: keras.layers.Layer | None = None,
    ) -> keras.Model:
        return _build(
            name,
            application,
            preprocessing,
            inputs=inputs,
            dropout=dropout,
            pretrained=pretrained,
            resize_to=resize_to,
            filter_layer=filter_layer,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{description} from ``keras.applications``."
    return register(name)(builder)


vgg16 = _register_application(
    "vgg16", keras.applications.VGG16, "caffe", "VGG16 (13 convolutions in 5 blocks), caffe preprocessing,"
)
resnet50 = _register_application(
    "resnet50", keras.applications.ResNet50, "caffe", "ResNet50, caffe preprocessing,"
)
efficientnetb0 = _register_application(
    "efficientnetb0",
    keras.applications.EfficientNetB0,
    None,
    "EfficientNetB0 (it normalises 0-255 pixels itself)",
)
densenet121 = _register_application(
    "densenet121", keras.applications.DenseNet121, "torch", "DenseNet121, torch preprocessing,"
)


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` that came from its Keras Application (between ``rescale`` and ``pool``)."""
    names = [layer.name for layer in model.layers]
    if "rescale" not in names or "pool" not in names:
        raise ValueError(f"{model.name} is not a backbone model. Received: layers={names[:5]}...")
    return model.layers[names.index("rescale") + 1 : names.index("pool")]


def freeze_backbone(model: keras.Model, trainable_top_layers: int = 0) -> None:
    """Freeze the backbone, except its top ``trainable_top_layers`` layers with weights.

    BatchNormalization layers stay frozen even among the top layers: a frozen BatchNormalization
    runs in inference mode in Keras, so fine-tuning keeps the ImageNet statistics.
    Recompile the model afterwards for the change to take effect in training.
    """
    if trainable_top_layers < 0:
        raise ValueError(
            f"trainable_top_layers must be >= 0. Received: trainable_top_layers={trainable_top_layers}"
        )
    with_weights = [layer for layer in backbone_layers(model) if layer.weights]
    unfrozen = (
        set(id(layer) for layer in with_weights[len(with_weights) - trainable_top_layers :])
        if trainable_top_layers
        else set()
    )
    for layer in with_weights:
        layer.trainable = id(layer) in unfrozen and not isinstance(layer, layers.BatchNormalization)
