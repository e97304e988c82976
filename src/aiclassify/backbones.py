"""ImageNet backbones from ``keras.applications`` and keras-hub with this project's input and head.

Each builder takes raw 0-255 RGB pixels like every model here: the backbone's own ImageNet
preprocessing is a layer inside the model (:class:`ImagenetPreprocessing`, or EfficientNet's
built-in one), an optional ``resize_to`` upsamples small inputs inside the model (the CIFAKE
fine-tuning studies fed 32x32 images to 224x224 networks), and the head is a pooling layer named
``pool`` (global average pooling; ViT's class token), Dropout and a float32 sigmoid, so mixed
precision is safe. A CNN backbone's layers are part of the model's own graph (``input_tensor``, or
copies of keras-hub ResNet-18's layers called one by one), so Grad-CAM finds its last convolution
and :func:`freeze_backbone` can freeze or unfreeze them one by one; keras-hub's ViT is one nested
layer (its layers serialize only inside it), whose patch embedding, transformer blocks and final
LayerNorm :func:`freeze_backbone` counts one by one.

``resnet18`` and ``vit_b16`` are keras-hub backbones built from their configuration (ResNet-18 v1,
ViT-B/16), never downloaded as presets; keras-hub (``pip install 'aiclassify[hub]'``) is imported
only when one of them is built.

``pretrained``: ``none`` (random weights, no download), ``imagenet`` (Keras downloads the weights
once into ``~/.keras/models``; keras-hub's preset weights come from Kaggle through kagglehub's
cache, or from ``~/.keras/models/<preset>/model.weights.h5``; without a network the error names
the file to fetch and where to put it), or a path to a backbone weights file: a Keras Applications
``.h5``, or a keras-hub backbone's ``.weights.h5`` (a preset's ``model.weights.h5``), e.g. fetched
by hand: the offline route. Whole-model files (``.keras``, or a ``.weights.h5`` holding the head)
are loaded after the build by :func:`aiclassify.models.load_pretrained`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import keras
from keras import layers, ops

from aiclassify.config import WHOLE_MODEL_SUFFIXES
from aiclassify.models import (
    build_model,
    check_dropout,
    load_pretrained,
    load_weights_strictly,
    probability_output,
    register,
)

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
MIN_BACKBONE_SIDE = 32
HUB_EXTRA = "hub"
HUB_WEIGHTS_FILE = "model.weights.h5"  # a keras-hub preset's backbone weights
_BACKBONES: list[str] = []  # registered by _register_application and _register_hub


@keras.saving.register_keras_serializable(package="aiclassify")
class ImagenetPreprocessing(layers.Layer):
    """The ImageNet input normalisation of a Keras Application, on 0-255 RGB pixels.

    ``caffe`` (VGG16, ResNet50): RGB to BGR, minus the ImageNet mean in 0-255 units; ``torch``
    (DenseNet121, keras-hub's ResNet-18): scaled to [0, 1], minus the ImageNet mean, divided by its
    standard deviation; ``tf`` (keras-hub's ViT): scaled to [-1, 1].
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "torch", "tf"):
            raise ValueError(f"mode must be 'caffe', 'torch' or 'tf'. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
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


def _backbone_input(
    name: str,
    inputs: keras.KerasTensor,
    preprocessing: str | None,
    resize_to: int,
    filter_layer: keras.layers.Layer | None,
) -> keras.KerasTensor:
    """The filter, the optional upsampling and the preprocessing (``rescale``) before a backbone."""
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
    if preprocessing:
        return ImagenetPreprocessing(preprocessing, name="rescale")(x)
    return layers.Identity(name="rescale")(x)


def _head(name: str, inputs: keras.KerasTensor, pooled: keras.KerasTensor, dropout: float) -> keras.Model:
    x = layers.Dropout(dropout, name="dropout")(pooled)
    return keras.Model(inputs, probability_output(x), name=name)


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
    x = _backbone_input(name, inputs, preprocessing, resize_to, filter_layer)
    # The application's own name: EfficientNet names its weights file after it.
    backbone = application(include_top=False, weights=_weights_argument(pretrained), input_tensor=x)
    return _head(name, inputs, layers.GlobalAveragePooling2D(name="pool")(backbone.output), dropout)


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
    _BACKBONES.append(name)
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


# --- keras-hub backbones: built from their configuration, weights from a preset's file ---------------


def import_keras_hub(name: str) -> ModuleType:
    """The ``keras_hub`` module, or ImportError naming the extra that installs it."""
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            f"{name} is built with keras-hub: pip install 'aiclassify[{HUB_EXTRA}]' "
            f"(or pip install 'keras-hub>=0.29,<0.30'). Received: {error}"
        ) from error
    return keras_hub


@keras.saving.register_keras_serializable(package="aiclassify")
class ClassToken(layers.Layer):
    """A ViT's pooled output: the class token, first of its ``(batch, tokens, width)`` sequence."""

    def call(self, inputs):
        return inputs[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@dataclass(frozen=True)
class HubBackbone:
    """How one keras-hub backbone is built, fed, given weights and pooled."""

    class_name: str  # in keras_hub.models
    config: dict  # its constructor's arguments but image_shape and name
    preset: str  # the keras-hub preset whose backbone weights model.pretrained=imagenet loads
    preprocessing: str  # the preset's image converter, as an ImagenetPreprocessing mode
    inline: Callable[[keras.Model, keras.KerasTensor], keras.KerasTensor]  # the backbone on x
    pool: Callable[[], keras.layers.Layer]  # named "pool"
    description: str
    patch_size: int = 1  # the input side must be a multiple of it
    weights_side: int | None = None  # the only input side the preset's weights fit (None: any)


HUB_BACKBONES: dict[str, HubBackbone] = {}
"""The registered keras-hub backbones, by model name."""


def _inline_functional(backbone: keras.Model, x: keras.KerasTensor) -> keras.KerasTensor:
    """Copies of ``backbone``'s layers, with its weights, called one by one on ``x``.

    They join the caller's graph, and it is their first: a layer's ``output`` (what Grad-CAM and
    feature models read) is then the caller's tensor, which sharing the backbone's own layers, already
    called on its own input, would not give.
    """
    copies, outputs = {}, {}

    def call(layer, *args, **kwargs):
        copies[layer.name] = layer
        outputs[layer.name] = layer(*args, **kwargs)
        return outputs[layer.name]

    graph = keras.Model(backbone.input, backbone.output)  # a plain Functional over the same layers
    keras.models.clone_model(graph, input_tensors=x, call_function=call)
    for layer in graph.layers:
        if layer.weights:
            copies[layer.name].set_weights(layer.get_weights())
    return outputs[graph.layers[-1].name]


def _nested(backbone: keras.Model, x: keras.KerasTensor) -> keras.KerasTensor:
    """``backbone`` called on ``x`` as one layer (keras-hub's ViT layers serialize only inside it)."""
    return backbone(x)


def _vit_units(backbone: keras.Model) -> list[keras.layers.Layer]:
    """A keras-hub ViT's units for :func:`freeze_backbone`: its patch embedding, each transformer
    block and the final LayerNorm."""
    encoder = backbone.get_layer("vit_encoder")
    return [backbone.get_layer("vit_patching_and_embedding"), *encoder.encoder_layers, encoder.layer_norm]


def _is_vit(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.Model) and "vit_encoder" in [sub.name for sub in layer.layers]


def is_backbone_weights_file(path: str | Path) -> bool:
    """Whether a ``.weights.h5`` file holds a backbone alone (a keras-hub preset's ``model.weights.h5``)
    rather than a whole model of this project: it has no top-level Dense layer, the models' head."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            names = list(handle["layers"].keys()) if "layers" in handle else []
    except OSError as error:
        raise ValueError(
            f"model.pretrained: {path} is not a Keras weights file: {error}. "
            f"Received: pretrained={str(path)!r}"
        ) from error
    return not any(name == "dense" or name.startswith("dense_") for name in names)


def _hub_weights_file(name: str, spec: HubBackbone, pretrained: str) -> Path | None:
    """The backbone weights file ``pretrained`` names for a keras-hub model (None: none to load now)."""
    if pretrained == "none":
        return None
    if pretrained == "imagenet":
        return _preset_weights(name, spec)
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained: no weights file at {path}. Received: pretrained={pretrained!r}"
        )
    if path.name.endswith(".weights.h5") and is_backbone_weights_file(path):
        return path
    if pretrained.endswith(WHOLE_MODEL_SUFFIXES):
        return None  # a whole model's weights: loaded after the build
    raise ValueError(
        f"{name} takes its backbone's weights as a keras-hub .weights.h5 file (the {HUB_WEIGHTS_FILE} of "
        f"preset {spec.preset}), not a Keras Applications .h5 file. Received: pretrained={pretrained!r}"
    )


def _preset_weights(name: str, spec: HubBackbone) -> Path:
    """The ImageNet weights of ``spec``'s preset: the local copy, else kagglehub's (downloading once)."""
    local = keras_weights_dir() / spec.preset / HUB_WEIGHTS_FILE
    if local.is_file():
        return local
    hub = import_keras_hub(name)
    handle = getattr(hub.models, spec.class_name).presets[spec.preset]["kaggle_handle"]
    handle = handle.removeprefix("kaggle://")
    url = f"https://www.kaggle.com/models/{handle}"
    try:
        import kagglehub

        return Path(kagglehub.model_download(handle, HUB_WEIGHTS_FILE))
    except Exception as error:  # kagglehub raises requests' errors, its own, or OSError offline
        raise PretrainedWeightsUnavailableError(
            f"ImageNet weights for {name} (keras-hub preset {spec.preset}) could not be downloaded (no "
            f"network?). Fetch {HUB_WEIGHTS_FILE} from {url} on a machine with internet and put it at "
            f"{local} (then model.pretrained=imagenet works offline), or set model.pretrained to the "
            f"file's path. Cause: {error!r}"
        ) from error


def _load_backbone_weights(name: str, backbone: keras.Model, path: Path, pretrained: str) -> None:
    load_weights_strictly(backbone, path, f"the weights of {name}'s keras-hub backbone", pretrained)


def _hub_model(
    name: str,
    spec: HubBackbone,
    inputs: keras.KerasTensor,
    *,
    dropout: float,
    pretrained: str,
    resize_to: int,
    filter_layer: keras.layers.Layer | None,
) -> keras.Model:
    check_dropout(dropout)
    x = _backbone_input(name, inputs, spec.preprocessing, resize_to, filter_layer)
    side = x.shape[1]
    if side % spec.patch_size:
        raise ValueError(
            f"{name} cuts its input into {spec.patch_size}x{spec.patch_size} patches: the side it sees "
            f"must be a multiple of {spec.patch_size}. Received: image_size={inputs.shape[1]}, "
            f"resize_to={resize_to}"
        )
    if pretrained == "imagenet" and spec.weights_side and side != spec.weights_side:
        raise ValueError(
            f"The ImageNet weights of {name} ({spec.preset}) fit {spec.weights_side}x{spec.weights_side} "
            f"inputs only: set model.resize_to={spec.weights_side}. Received: image_size={inputs.shape[1]}, "
            f"resize_to={resize_to}"
        )
    hub = import_keras_hub(name)
    weights = _hub_weights_file(name, spec, pretrained)
    backbone = getattr(hub.models, spec.class_name)(
        **spec.config, image_shape=(side, side, x.shape[-1]), name=f"{name}_backbone"
    )
    if weights is not None:
        _load_backbone_weights(name, backbone, weights, pretrained)
    return _head(name, inputs, spec.pool()(spec.inline(backbone, x)), dropout)


def _register_hub(name: str, spec: HubBackbone) -> Callable[..., keras.Model]:
    """Register the builder ``name``: the keras-hub backbone ``spec`` with this module's input and head."""

    def builder(
        inputs: keras.KerasTensor,
        *,
        dropout: float = 0.5,
        pretrained: str = "none",
        resize_to: int = 0,
        filter_layer: keras.layers.Layer | None = None,
    ) -> keras.Model:
        return _hub_model(
            name,
            spec,
            inputs,
            dropout=dropout,
            pretrained=pretrained,
            resize_to=resize_to,
            filter_layer=filter_layer,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{spec.description} from keras-hub, built from its configuration."
    HUB_BACKBONES[name] = spec
    _BACKBONES.append(name)
    return register(name)(builder)


resnet18 = _register_hub(
    "resnet18",
    HubBackbone(
        class_name="ResNetBackbone",
        config={
            "input_conv_filters": [64],
            "input_conv_kernel_sizes": [7],
            "stackwise_num_filters": [64, 128, 256, 512],
            "stackwise_num_blocks": [2, 2, 2, 2],
            "stackwise_num_strides": [1, 2, 2, 2],
            "block_type": "basic_block",
            "use_pre_activation": False,
        },
        preset="resnet_18_imagenet",
        preprocessing="torch",
        inline=_inline_functional,
        pool=lambda: layers.GlobalAveragePooling2D(name="pool"),
        description="ResNet-18 v1 (basic blocks [2, 2, 2, 2], 64-512 filters), torch preprocessing,",
    ),
)
vit_b16 = _register_hub(
    "vit_b16",
    HubBackbone(
        class_name="ViTBackbone",
        config={"patch_size": 16, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "mlp_dim": 3072},
        preset="vit_base_patch16_224_imagenet",
        preprocessing="tf",
        inline=_nested,
        pool=lambda: ClassToken(name="pool"),
        description=(
            "ViT-B/16 (16x16 patches, 12 layers, 12 heads, width 768, MLP 3072; 86M parameters), "
            "inputs scaled to [-1, 1], class-token head,"
        ),
        patch_size=16,
        weights_side=224,
    ),
)


def backbone_names() -> list[str]:
    """The registered backbone models: the ones :func:`freeze_backbone` and ``train.fine_tune`` take."""
    return sorted(_BACKBONES)


def feature_extractor(
    name: str, image_size: int, pretrained: str = "imagenet", resize_to: int = 0
) -> keras.Model:
    """The pooled-feature model of the backbone ``name``: 0-255 RGB pixels in, one vector per image out.

    It is the classifier :func:`aiclassify.models.build_model` builds for ``image_size`` inputs (the
    backbone's preprocessing, an optional upsampling to ``resize_to``, the backbone) cut at its
    ``pool`` layer, before Dropout and the head, with ``pretrained`` weights as ``model.pretrained``
    takes them (``none``, ``imagenet`` or a weights file). Widths: resnet18 and vgg16 512,
    densenet121 1024, efficientnetb0 1280, resnet50 2048, vit_b16 768 (its class token). Its layers
    are trainable as built: set ``trainable = False`` to keep it frozen.
    """
    if name not in _BACKBONES:
        raise ValueError(
            f"feature_extractor takes a backbone, one of {backbone_names()}. Received: name={name!r}"
        )
    model = load_pretrained(
        build_model(name, image_size, pretrained=pretrained, resize_to=resize_to), pretrained
    )
    return keras.Model(model.input, model.get_layer("pool").output, name=f"{name}_features")


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` that came from its backbone (between ``rescale`` and ``pool``).

    A nested keras-hub ViT counts as its units: patch embedding, transformer blocks, final LayerNorm.
    """
    names = [layer.name for layer in model.layers]
    if "rescale" not in names or "pool" not in names:
        raise ValueError(f"{model.name} is not a backbone model. Received: layers={names[:5]}...")
    found = model.layers[names.index("rescale") + 1 : names.index("pool")]
    return [unit for layer in found for unit in (_vit_units(layer) if _is_vit(layer) else [layer])]


def freeze_backbone(model: keras.Model, trainable_top_layers: int | None = 0) -> None:
    """Freeze the backbone, except its top ``trainable_top_layers`` layers with weights (None: all).

    BatchNormalization layers stay frozen even among the top layers: a frozen BatchNormalization
    runs in inference mode in Keras, so fine-tuning keeps the ImageNet statistics. The head (after
    ``pool``) is left as it is. Recompile the model afterwards for the change to take effect in
    training.
    """
    if trainable_top_layers is not None and trainable_top_layers < 0:
        raise ValueError(
            f"trainable_top_layers must be >= 0. Received: trainable_top_layers={trainable_top_layers}"
        )
    names = [layer.name for layer in model.layers]
    for layer in model.layers[names.index("rescale") + 1 : names.index("pool")] if "rescale" in names else []:
        if _is_vit(layer):  # its containers trainable, so that each unit's own flag decides
            layer.trainable = True
            layer.get_layer("vit_encoder").trainable = True
    with_weights = [layer for layer in backbone_layers(model) if layer.weights]
    count = (
        len(with_weights) if trainable_top_layers is None else min(trainable_top_layers, len(with_weights))
    )
    unfrozen = {id(layer) for layer in with_weights[len(with_weights) - count :]} if count else set()
    for layer in with_weights:
        layer.trainable = id(layer) in unfrozen and not isinstance(layer, layers.BatchNormalization)
