"""The model registry and the published parameter counts."""

from __future__ import annotations

import dataclasses
import logging
import typing

import keras
import numpy as np
import pytest

from aiclassify.config import Config, DataConfig, ModelConfig, ModelName, load_config
from aiclassify.models import (
    build_from_config,
    build_model,
    load_pretrained,
    model_names,
    model_options,
    register,
    standalone_model_names,
)


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


def test_lenet2_doubles_both_lenet_convolutions():
    model = build_model("lenet2", 32)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.name for c in convs] == ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"]
    assert [c.filters for c in convs] == [6, 6, 16, 16]
    assert all(c.kernel_size == (5, 5) and c.padding == "valid" for c in convs)
    lenet5_convs = [
        layer for layer in build_model("lenet5", 32).layers if isinstance(layer, keras.layers.Conv2D)
    ]
    assert len(convs) == 2 * len(lenet5_convs)
    assert model.count_params() == 28_419


def test_cnn_small_nopool_has_no_pooling():
    model = build_model("cnn_small_nopool", 32)
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [
        "block1_conv1",
        "block2_conv1",
    ]
    assert model.get_layer("flatten").output.shape[1] == 32 * 32 * 32
    assert (
        build_model("cnn_small_nopool", 32, padding="valid").get_layer("flatten").output.shape[1]
        == 28 * 28 * 32
    )


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Valid names: .*cnn5.*Received: name='vgg'"):
        build_model("vgg", 32)


@pytest.mark.parametrize(
    ("name", "options", "size"),
    [
        ("cnn5", {}, 8),
        ("lenet5", {}, 8),
        ("lenet2", {}, 16),
        ("cnn_small4", {"padding": "valid"}, 8),
        ("cnn_small_nopool", {"padding": "valid"}, 4),
    ],
)
def test_too_small_input_is_a_clear_error(name, options, size):
    with pytest.raises(ValueError, match=f"Received: image_size={size}"):
        build_model(name, size, **options)


def test_registry_holds_exactly_the_config_model_names():
    assert model_names() == sorted(typing.get_args(ModelName))


def test_registering_an_undeclared_name_is_an_error():
    with pytest.raises(ValueError, match=r"ModelName.*Received: name='alexnet'"):
        register("alexnet")


def test_each_builder_takes_only_the_options_it_uses():
    assert set(model_options("cnn5")) == {"dropout", "bn_momentum"}
    assert set(model_options("lenet5")) == set(model_options("lenet2")) == {"bn_momentum"}
    for name in ("cnn_small2", "cnn_small3", "cnn_small4", "cnn_small_nopool"):
        assert set(model_options(name)) == {"dropout", "padding"}


@pytest.mark.parametrize("name", model_names())
def test_builder_defaults_equal_model_config_defaults(name):
    defaults = dataclasses.asdict(ModelConfig())
    assert model_options(name) == {option: defaults[option] for option in model_options(name)}


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [("cnn5", "padding", "valid"), ("lenet5", "dropout", 0.2), ("cnn_small2", "bn_momentum", 0.9)],
)
def test_an_option_the_model_does_not_use_is_rejected(name, option, value):
    message = f"Model '{name}' does not take option '{option}'. Received: {option}={value!r}"
    with pytest.raises(ValueError) as error:
        build_model(name, 32, **{option: value})
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("cnn5", {"dropout": 1.0}, "Received: dropout=1.0"),
        ("lenet5", {"bn_momentum": 1.0}, "Received: bn_momentum=1.0"),
        ("cnn_small2", {"padding": "full"}, "Received: padding='full'"),
    ],
)
def test_option_values_are_checked(name, options, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, 32, **options)


def test_build_from_config_passes_the_model_and_filter_options():
    config = load_config(
        None, ["model.name=cnn_small2", "model.padding=valid", "data.image_size=32", "data.filter=srm"]
    )
    model = build_from_config(config)
    assert model.name == "cnn_small2" and model.get_layer("block1_conv1").padding == "valid"
    assert model.get_layer("filter").__class__.__name__ == "SRMResidual"
    assert model.input.shape[1:] == (32, 32, 3)


def test_build_from_config_defaults_are_never_an_error():
    for name in standalone_model_names():
        config = load_config(None, [f"model.name={name}", "data.image_size=32"])
        assert build_from_config(config).name == name


def test_build_from_config_logs_a_set_option_the_model_does_not_use(caplog):
    config = load_config(None, ["model.padding=valid", "model.name=cnn5", "data.image_size=32"])
    with caplog.at_level(logging.WARNING, logger="aiclassify.models"):
        model = build_from_config(config)
    assert model.name == "cnn5"
    assert "model.padding='valid' is not used by cnn5; ignored." in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aiclassify.models"):
        build_from_config(load_config(None, ["model.name=cnn5", "data.image_size=32"]))
    assert "not used" not in caplog.text


def test_build_from_config_passes_a_changed_option():
    config = Config(data=DataConfig(image_size=32), model=ModelConfig(bn_momentum=0.9))
    model = build_from_config(config)
    assert model.get_layer("block1_bn1").momentum == 0.9


@pytest.mark.parametrize("name", standalone_model_names())
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


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_pretrained_weights_file_is_loaded_into_the_built_model(tmp_path, suffix):
    source = build_model("cnn_small2", 32)
    for weight in source.weights:
        weight.assign(np.full(weight.shape, 0.25, dtype=weight.dtype))
    weights_file = tmp_path / f"start{suffix}"
    if suffix == ".keras":
        source.save(weights_file)
    else:
        source.save_weights(weights_file)
    config = Config(
        data=DataConfig(image_size=32), model=ModelConfig(name="cnn_small2", pretrained=str(weights_file))
    )
    loaded = load_pretrained(build_from_config(config), config.model.pretrained)
    for expected, actual in zip(source.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def test_pretrained_none_keeps_the_built_weights():
    model = build_model("cnn_small2", 32)
    before = [np.asarray(weight).copy() for weight in model.weights]
    load_pretrained(model, "none")
    for expected, weight in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(weight), expected)


def test_a_missing_pretrained_file_names_its_path(tmp_path):
    missing = tmp_path / "absent.keras"
    with pytest.raises(FileNotFoundError, match="absent.keras"):
        load_pretrained(build_model("cnn_small2", 32), str(missing))


def test_pretrained_weights_of_another_architecture_are_rejected(tmp_path):
    weights_file = tmp_path / "lenet.weights.h5"
    build_model("lenet5", 32).save_weights(weights_file)
    with pytest.raises(ValueError, match="lenet.weights.h5 does not hold weights of this"):
        load_pretrained(build_model("cnn_small2", 32), str(weights_file))


def test_pretrained_weights_of_a_model_with_fewer_layers_are_rejected(tmp_path):
    weights_file = tmp_path / "small.weights.h5"
    build_model("cnn_small2", 32).save_weights(weights_file)
    with pytest.raises(ValueError, match="does not hold weights of this"):
        load_pretrained(build_model("cnn_small3", 32), str(weights_file))


def test_pretrained_must_be_none_or_a_weights_file():
    with pytest.raises(ValueError, match="Received: pretrained='weights.txt'"):
        ModelConfig(pretrained="weights.txt")


def test_pretrained_is_not_reported_as_an_unused_model_option(tmp_path, caplog):
    config = Config(model=ModelConfig(name="cnn_small2", pretrained=str(tmp_path / "w.keras")))
    with caplog.at_level(logging.WARNING, logger="aiclassify.models"):
        build_from_config(config)
    assert "pretrained" not in caplog.text
