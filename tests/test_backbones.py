"""ImageNet backbones: preprocessing inside the model, both input sizes, export, pretrained weights."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from aiclassify.backbones import (
    ImagenetPreprocessing,
    PretrainedWeightsUnavailableError,
    backbone_layers,
    freeze_backbone,
)
from aiclassify.config import Config, DataConfig, ModelConfig
from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, export_saved_model
from aiclassify.models import build_from_config, build_model, imagenet_models, load_pretrained
from aiclassify.preprocessing import decode_batch

BACKBONES = ["densenet121", "efficientnetb0", "resnet50", "vgg16"]
ROUND_TRIP_IN_SUITE = "vgg16"
ALL_BACKBONES = "AICLASSIFY_ALL_BACKBONES"


def test_the_backbones_are_the_imagenet_models():
    assert imagenet_models() == BACKBONES


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_builds_at_both_sizes_and_gives_probabilities(name, size):
    model = build_model(name, size)
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype("float32")
    output = np.asarray(model(pixels, training=False))
    assert output.shape == (1, 1) and 0.0 <= output[0, 0] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_trains_a_step_exports_and_round_trips(tmp_path, name, size, encoded_images):
    if name != ROUND_TRIP_IN_SUITE and os.environ.get(ALL_BACKBONES) != "1":
        pytest.skip(
            f"{name}: compiling its train step and SavedModel takes minutes on a 2-core CPU; "
            f"{ROUND_TRIP_IN_SUITE} stands for the backbones here, {ALL_BACKBONES}=1 runs them all"
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
    ],
)
def test_preprocessing_layer_matches_keras_applications(mode, reference):
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = reference(pixels.copy())
    np.testing.assert_allclose(
        np.asarray(ImagenetPreprocessing(mode)(pixels)), expected, rtol=1e-5, atol=1e-4
    )
    with pytest.raises(ValueError, match="Received: mode='tf'"):
        ImagenetPreprocessing("tf")


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


def test_a_keras_applications_backbone_file_loads_through_pretrained(tmp_path):
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    first = backbone.get_layer("block1_conv1")
    first.kernel.assign(np.full(first.kernel.shape, 0.25, dtype="float32"))
    weights_file = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    backbone.save(weights_file)  # the legacy HDF5 format of the downloadable weights files
    model = build_model("vgg16", 32, pretrained=str(weights_file))
    np.testing.assert_array_equal(
        np.asarray(model.get_layer("block1_conv1").kernel), np.asarray(first.kernel)
    )


def test_imagenet_without_a_network_names_the_file_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens: no network
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(PretrainedWeightsUnavailableError) as error:
        build_model("vgg16", 32, pretrained="imagenet")
    message = str(error.value)
    assert "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" in message
    assert str(tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
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
