"""ImageNet backbones: preprocessing inside the model, both input sizes, export, pretrained weights.

resnet18 and vit_b16 need keras-hub (the ``hub`` extra); their tests skip, saying so, without it.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from aiclassify.backbones import (
    HUB_BACKBONES,
    ImagenetPreprocessing,
    PretrainedWeightsUnavailableError,
    backbone_layers,
    backbone_names,
    feature_extractor,
    freeze_backbone,
    keras_weights_dir,
)
from aiclassify.config import Config, DataConfig, ModelConfig
from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, export_saved_model
from aiclassify.models import build_from_config, build_model, imagenet_models, load_pretrained
from aiclassify.preprocessing import decode_batch

BACKBONES = ["densenet121", "efficientnetb0", "resnet18", "resnet50", "vgg16", "vit_b16"]
HUB = {"resnet18", "vit_b16"}
ROUND_TRIP_IN_SUITE = {"vgg16", "resnet18"}
ALL_BACKBONES = "AICLASSIFY_ALL_BACKBONES"
NO_NETWORK = "http://127.0.0.1:9"  # nothing listens there


def needs_hub(name: str) -> None:
    """Skip, saying so, when ``name`` is built with keras-hub and it is not installed."""
    if name in HUB:
        pytest.importorskip("keras_hub", reason=f"{name} needs keras-hub: pip install 'aiclassify[hub]'")


def without_network(monkeypatch, keras_home) -> None:
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(keras_home / "kagglehub"))
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, NO_NETWORK)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


def test_the_backbones_are_imagenet_models():
    assert backbone_names() == BACKBONES
    assert set(BACKBONES) <= set(imagenet_models())
    assert set(HUB_BACKBONES) == HUB


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_builds_at_both_sizes_and_gives_probabilities(name, size):
    needs_hub(name)
    model = build_model(name, size)
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype("float32")
    output = np.asarray(model(pixels, training=False))
    assert output.shape == (1, 1) and 0.0 <= output[0, 0] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_trains_a_step_exports_and_round_trips(tmp_path, name, size, encoded_images):
    needs_hub(name)
    if name not in ROUND_TRIP_IN_SUITE and os.environ.get(ALL_BACKBONES) != "1":
        pytest.skip(
            f"{name}: compiling its train step and SavedModel takes minutes on a 2-core CPU; "
            f"{sorted(ROUND_TRIP_IN_SUITE)} stand for the backbones here, {ALL_BACKBONES}=1 runs them all"
        )
    model = build_model(name, size)
    assert model.input.shape[1:] == (size, size, 3) and model.layers[1].name == "rescale"
    model.compile(optimizer="adam", loss="binary_crossentropy")
    pixels = np.random.default_rng(0).integers(0, 256, (2, size, size, 3)).astype("float32")
    head = model.get_layer("probability_ai")
    before = np.asarray(head.kernel).copy()
    model.fit(pixels, np.array([0, 1], dtype="float32"), epochs=1, batch_size=2, verbose=0)
    assert not np.array_equal(np.asarray(head.kernel), before)
    export_saved_model(model, tmp_path / "saved_model", size)
    images = tf.constant(encoded_images[:2])
    expected = model(tf.cast(decode_batch(images, size), tf.float32), training=False).numpy().ravel()
    served = tf.saved_model.load(str(tmp_path / "saved_model")).signatures[BYTES_SIGNATURE](
        image_bytes=images
    )
    np.testing.assert_allclose(served[OUTPUT_KEY].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_small_inputs_are_upsampled_inside_the_model():
    model = build_model("vgg16", 32, resize_to=64)
    assert model.input.shape[1:] == (32, 32, 3)
    assert model.get_layer("upsample").output.shape[1:] == (64, 64, 3)
    with pytest.raises(ValueError, match="Received: resize_to=16"):
        build_model("vgg16", 32, resize_to=16)
    with pytest.raises(ValueError, match=r"set model.resize_to .* Received: image_size=16"):
        build_model("vgg16", 16)


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("caffe", keras.applications.vgg16.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
        ("tf", keras.applications.mobilenet_v2.preprocess_input),  # [-1, 1], as keras-hub's ViT
    ],
)
def test_preprocessing_layer_matches_keras_applications(mode, reference):
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = reference(pixels.copy())
    np.testing.assert_allclose(
        np.asarray(ImagenetPreprocessing(mode)(pixels)), expected, rtol=1e-5, atol=1e-4
    )
    with pytest.raises(ValueError, match="Received: mode='inception'"):
        ImagenetPreprocessing("inception")


def test_head_is_float32_under_mixed_precision():
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("efficientnetb0", 32)
        assert model.get_layer("probability_ai").compute_dtype == "float32"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_a_whole_model_weights_file_loads_through_pretrained(tmp_path):
    source = build_model("efficientnetb0", 32)
    head = source.get_layer("probability_ai")
    head.kernel.assign(np.full(head.kernel.shape, 0.5, dtype="float32"))
    weights_file = tmp_path / "start.weights.h5"
    source.save_weights(weights_file)
    config = Config(
        data=DataConfig(image_size=32), model=ModelConfig(name="efficientnetb0", pretrained=str(weights_file))
    )
    loaded = load_pretrained(build_from_config(config), config.model.pretrained)
    for expected, actual in zip(source.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


@pytest.mark.parametrize(
    "name, application",
    [
        ("vgg16", keras.applications.VGG16),
        ("resnet50", keras.applications.ResNet50),
        ("efficientnetb0", keras.applications.EfficientNetB0),
        ("densenet121", keras.applications.DenseNet121),
    ],
)
def test_a_keras_applications_backbone_file_loads_through_pretrained(tmp_path, name, application):
    backbone = application(include_top=False, weights=None, input_shape=(32, 32, 3))
    first = next(layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D))
    first.kernel.assign(np.full(first.kernel.shape, 0.25, dtype="float32"))
    weights_file = tmp_path / f"{name}_notop.h5"
    backbone.save(weights_file)  # the legacy HDF5 format of the downloadable weights files
    model = build_model(name, 32, pretrained=str(weights_file))
    np.testing.assert_array_equal(np.asarray(model.get_layer(first.name).kernel), np.asarray(first.kernel))
    probabilities = np.asarray(model(np.zeros((1, 32, 32, 3), "float32"), training=False))
    assert probabilities.shape == (1, 1) and 0 <= probabilities[0, 0] <= 1


def test_vit_b16_preset_weights_file_loads_through_pretrained(tmp_path):
    needs_hub("vit_b16")
    import keras_hub

    spec = HUB_BACKBONES["vit_b16"]
    backbone = keras_hub.models.ViTBackbone(**spec.config, image_shape=(32, 32, 3))
    embedding = backbone.get_layer("vit_patching_and_embedding")
    kernel = next(weight for weight in embedding.weights if len(weight.shape) == 4)
    kernel.assign(np.full(kernel.shape, 0.01, dtype="float32"))
    preset_file = tmp_path / "model.weights.h5"  # as in a downloaded keras-hub preset
    backbone.save_weights(preset_file)
    model = build_model("vit_b16", 32, pretrained=str(preset_file))
    loaded = [w for w in model.weights if len(w.shape) == 4 and tuple(w.shape) == tuple(kernel.shape)]
    assert loaded and np.allclose(np.asarray(loaded[0]), 0.01)


@pytest.mark.parametrize(
    ("name", "url"),
    [
        (
            "vgg16",
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        ("efficientnetb0", "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"),
    ],
)
def test_imagenet_without_a_network_names_the_file_to_fetch(tmp_path, monkeypatch, name, url):
    without_network(monkeypatch, tmp_path / "keras")
    with pytest.raises(PretrainedWeightsUnavailableError) as error:
        build_model(name, 32, pretrained="imagenet")
    message = str(error.value)
    assert f"Fetch {url} " in message
    assert str(tmp_path / "keras" / "models" / url.rsplit("/", 1)[-1]) in message
    assert "model.pretrained" in message


def test_a_missing_backbone_file_names_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        build_model("vgg16", 32, pretrained=str(tmp_path / "absent.h5"))


def test_imagenet_weights_on_a_model_without_them_is_a_clear_error():
    config = Config(data=DataConfig(image_size=32), model=ModelConfig(name="cnn5", pretrained="imagenet"))
    with pytest.raises(
        ValueError, match=r"cnn5 has no ImageNet weights.*vgg16.*Received: pretrained='imagenet'"
    ):
        build_from_config(config)


def test_freezing_keeps_batch_norm_in_inference_mode_and_unfreezes_the_top():
    model = build_model("resnet50", 32)
    freeze_backbone(model)
    assert not any(layer.trainable_weights for layer in backbone_layers(model))
    assert model.get_layer("probability_ai").trainable
    freeze_backbone(model, trainable_top_layers=6)
    with_weights = [layer for layer in backbone_layers(model) if layer.weights]
    top = with_weights[-6:]
    assert all(layer.trainable for layer in top if not isinstance(layer, keras.layers.BatchNormalization))
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in top)
    assert not any(layer.trainable for layer in with_weights[:-6])
    assert not any(
        layer.trainable for layer in with_weights if isinstance(layer, keras.layers.BatchNormalization)
    )
    with pytest.raises(ValueError, match="Received: trainable_top_layers=-1"):
        freeze_backbone(model, -1)


def test_freezing_more_layers_than_there_are_or_none_unfreezes_them_all():
    model = build_model("vgg16", 32)
    with_weights = [layer for layer in backbone_layers(model) if layer.weights]
    freeze_backbone(model, 0)
    assert not any(layer.trainable for layer in with_weights)
    freeze_backbone(model, len(with_weights) + 5)
    assert all(layer.trainable for layer in with_weights)
    freeze_backbone(model, 0)
    freeze_backbone(model, None)
    assert all(layer.trainable for layer in with_weights)


# --- the keras-hub backbones ---------------------------------------------------------------------


def test_resnet18_is_resnet18_v1_with_torch_preprocessing_and_a_gradcam_layer():
    needs_hub("resnet18")
    from aiclassify.explain import last_conv_layer

    model = build_model("resnet18", 224)
    assert model.count_params() == 11_186_112 + 513  # keras-hub's resnet_18_imagenet, plus the head
    assert model.get_layer("rescale").mode == "torch"
    assert model.get_layer("pool").output.shape[1:] == (512,)
    assert last_conv_layer(model) == "stack3_block1_2_conv"  # its layers are the model's own
    with_weights = [layer for layer in backbone_layers(model) if layer.weights]
    assert len(with_weights) == 40  # 20 convolutions, each with its BatchNormalization
    freeze_backbone(model, None)
    assert all(
        layer.trainable is not isinstance(layer, keras.layers.BatchNormalization) for layer in with_weights
    )


def test_resnet18_feature_extractor_gives_its_pooled_features():
    needs_hub("resnet18")
    extractor = feature_extractor("resnet18", 32, pretrained="none")
    assert extractor.input.shape[1:] == (32, 32, 3) and extractor.output.shape[1:] == (512,)
    pixels = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    features = np.asarray(extractor(pixels, training=False))
    assert features.shape == (2, 512) and np.all(features >= 0) and np.any(features > 0)  # pooled ReLUs
    upsampled = feature_extractor("resnet18", 32, pretrained="none", resize_to=64)
    assert upsampled.get_layer("upsample").output.shape[1:] == (64, 64, 3)
    with pytest.raises(ValueError, match=r"one of \['densenet121', .*\]\. Received: name='cnn5'"):
        feature_extractor("cnn5", 32, pretrained="none")


def test_resnet18_weights_files_load_through_pretrained(tmp_path, monkeypatch):
    needs_hub("resnet18")
    import keras_hub

    spec = HUB_BACKBONES["resnet18"]
    backbone = keras_hub.models.ResNetBackbone(**spec.config, image_shape=(None, None, 3))
    first = backbone.get_layer("conv1_conv")
    first.kernel.assign(np.full(first.kernel.shape, 0.25, dtype="float32"))
    preset_file = tmp_path / "model.weights.h5"  # as in a downloaded keras-hub preset
    backbone.save_weights(preset_file)
    config = Config(
        data=DataConfig(image_size=32), model=ModelConfig(name="resnet18", pretrained=str(preset_file))
    )
    model = load_pretrained(build_from_config(config), config.model.pretrained)
    np.testing.assert_array_equal(np.asarray(model.get_layer("conv1_conv").kernel), np.asarray(first.kernel))

    head = model.get_layer("probability_ai")
    head.kernel.assign(np.full(head.kernel.shape, 0.5, dtype="float32"))
    whole_file = tmp_path / "start.weights.h5"  # a whole model's: loaded after the build
    model.save_weights(whole_file)
    loaded = load_pretrained(build_model("resnet18", 32, pretrained=str(whole_file)), str(whole_file))
    for expected, actual in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))

    without_network(monkeypatch, tmp_path / "keras")
    local = keras_weights_dir() / "resnet_18_imagenet" / "model.weights.h5"
    local.parent.mkdir(parents=True)
    local.write_bytes(preset_file.read_bytes())
    offline = build_model("resnet18", 32, pretrained="imagenet")  # the local copy, no download
    np.testing.assert_array_equal(
        np.asarray(offline.get_layer("conv1_conv").kernel), np.asarray(first.kernel)
    )

    other = tmp_path / "vgg16.weights.h5"  # a backbone's file, but not a ResNet-18's
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(other)
    with pytest.raises(ValueError, match=r"does not hold the weights of resnet18's keras-hub backbone"):
        build_model("resnet18", 32, pretrained=str(other))
    with pytest.raises(ValueError, match=r"not a Keras Applications \.h5 file"):
        legacy = tmp_path / "resnet18.h5"
        legacy.write_bytes(b"")
        build_model("resnet18", 32, pretrained=str(legacy))


@pytest.mark.parametrize(
    ("name", "handle"),
    [
        ("resnet18", "resnetv1/keras/resnet_18_imagenet"),
        ("vit_b16", "vit/keras/vit_base_patch16_224_imagenet"),
    ],
)
def test_keras_hub_imagenet_without_a_network_names_the_file_to_fetch(tmp_path, monkeypatch, name, handle):
    needs_hub(name)
    without_network(monkeypatch, tmp_path / "keras")
    with pytest.raises(PretrainedWeightsUnavailableError) as error:
        build_model(name, 224, pretrained="imagenet")
    message = str(error.value)
    assert f"https://www.kaggle.com/models/keras/{handle}/" in message
    preset = HUB_BACKBONES[name].preset
    assert str(tmp_path / "keras" / "models" / preset / "model.weights.h5") in message
    assert "model.pretrained" in message


def test_vit_b16_has_the_b16_dimensions_upsamples_small_inputs_and_a_float32_head():
    needs_hub("vit_b16")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("vit_b16", 32, resize_to=224)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.input.shape[1:] == (32, 32, 3)
    assert model.get_layer("upsample").output.shape[1:] == (224, 224, 3)
    assert model.get_layer("rescale").mode == "tf"  # keras-hub's ViT image converter: [-1, 1]
    backbone = model.get_layer("vit_b16_backbone")
    assert (backbone.patch_size, backbone.num_layers, backbone.num_heads) == ((16, 16), 12, 12)
    assert (backbone.hidden_dim, backbone.mlp_dim) == (768, 3072)
    assert backbone.count_params() == 85_798_656  # keras-hub's vit_base_patch16_224_imagenet
    assert model.get_layer("pool").output.shape[1:] == (768,)  # the class token
    assert backbone.compute_dtype == "float16"
    assert model.get_layer("probability_ai").compute_dtype == "float32" and model.output.dtype == "float32"
    pixels = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    output = np.asarray(model(pixels, training=False))
    assert output.shape == (1, 1) and output.dtype == np.float32 and 0.0 <= output[0, 0] <= 1.0


def test_vit_b16_checks_its_input_side_before_any_download():
    needs_hub("vit_b16")
    with pytest.raises(ValueError, match=r"must be a multiple of 16\. Received: image_size=40, resize_to=0"):
        build_model("vit_b16", 40)
    with pytest.raises(ValueError, match=r"set model\.resize_to=224\. Received: image_size=32, resize_to=0"):
        build_model("vit_b16", 32, pretrained="imagenet")


def test_freezing_a_vit_counts_its_transformer_blocks(tmp_path):
    needs_hub("vit_b16")
    import keras_hub

    spec = HUB_BACKBONES["vit_b16"]
    backbone = keras_hub.models.ViTBackbone(**spec.config, image_shape=(32, 32, 3))
    final_norm = backbone.get_layer("vit_encoder").layer_norm
    final_norm.gamma.assign(np.full(final_norm.gamma.shape, 0.5, dtype="float32"))
    preset_file = tmp_path / "model.weights.h5"
    backbone.save_weights(preset_file)
    model = build_model("vit_b16", 32, pretrained=str(preset_file))
    units = backbone_layers(model)
    blocks = [f"transformer_block_{index}" for index in range(1, 13)]
    assert [unit.name for unit in units] == ["vit_patching_and_embedding", *blocks, "ln"]
    np.testing.assert_array_equal(np.asarray(units[-1].gamma), np.asarray(final_norm.gamma))
    model.get_layer("vit_b16_backbone").trainable = False  # freeze_backbone re-opens the containers
    freeze_backbone(model, 2)
    assert [unit.trainable for unit in units] == [False] * 12 + [True, True]
    expected = units[-2].trainable_weights + units[-1].trainable_weights
    expected += model.get_layer("probability_ai").trainable_weights
    assert {id(weight) for weight in model.trainable_weights} == {id(weight) for weight in expected}
