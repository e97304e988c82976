"""The model registry and the published parameter counts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from aiclassify.models import build_model, model_names


def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def test_cnn5_has_the_published_parameter_count():
    model = build_model("cnn5", 224)
    assert model.count_params() == 17_566_241
    assert trainable_count(model) == 17_562_273


def test_cnn5_structure():
    model = build_model("cnn5", 224)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.name for c in convs[:2]] == ["block1_conv1", "block1_conv2"]
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 10
    assert model.get_layer("fc1").units == 512
    assert model.get_layer("probability_ai").activation.__name__ == "sigmoid"


def test_small_cnn_two_conv_valid_has_published_count():
    assert build_model("cnn_small2", 32, padding="valid").count_params() == 78_945


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Valid names: .*cnn5.*Received: name='vgg'"):
        build_model("vgg", 32)


@pytest.mark.parametrize("name", ["cnn5", "lenet5", "cnn_small4"])
def test_too_small_input_is_a_clear_error(name):
    with pytest.raises(ValueError, match="Received: image_size=8"):
        build_model(name, 8, padding="valid")


@pytest.mark.parametrize("name", model_names())
def test_every_model_rescales_raw_pixels_and_outputs_probabilities(name):
    model = build_model(name, 32)
    assert model.layers[1].name == "rescale"
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    output = model(pixels, training=False).numpy()
    assert output.shape == (2, 1) and np.all((output >= 0) & (output <= 1))


def test_output_stays_float32_under_mixed_precision():
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("cnn_small2", 32)
        assert model.get_layer("block1_conv1").compute_dtype == "float16"
        assert model.get_layer("probability_ai").compute_dtype == "float32"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy(previous)
