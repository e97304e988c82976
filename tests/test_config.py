"""The config schema: strict loading, overrides, shipped configs."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from aiclassify.config import CONFIG_DIR, Config, ConfigError, load_config, save_config, to_dict


def test_defaults_are_frozen():
    config = load_config()
    assert config == Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "train.epoch" in message and str(path) in message and "train.epochs" in message


def test_unknown_section_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="'trian'"):
        load_config(path)


def test_wrong_type_names_expected_type(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: three\n")
    with pytest.raises(ConfigError, match=r"'train.epochs' must be int"):
        load_config(path)


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="must be int"):
        load_config(None, ["train.epochs=true"])


def test_int_is_accepted_for_float():
    assert load_config(None, ["train.learning_rate=1"]).train.learning_rate == 1.0


def test_set_overrides_file_values():
    config = load_config("demo.yaml", ["train.epochs=3", "model.name=lenet5"])
    assert config.train.epochs == 3 and config.model.name == "lenet5"
    assert config.data.source == "demo"  # untouched value from the file


def test_malformed_override_is_an_error():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.epochs"])


def test_bare_name_resolves_against_configs_dir():
    assert load_config("faces").name == "faces"
    assert load_config("faces.yaml").data.image_size == 224


def test_missing_config_lists_shipped_ones():
    with pytest.raises(ConfigError, match="demo.yaml"):
        load_config("nope.yaml")


def test_saved_config_round_trips(tmp_path):
    config = load_config("cifake.yaml", ["train.epochs=2"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == to_dict(config)


@pytest.mark.parametrize("name", ["faces", "general", "cifake", "demo", "demo-general"])
def test_shipped_configs_load_and_document_themselves(name):
    path = CONFIG_DIR / f"{name}.yaml"
    header = path.read_text().split("\nname:")[0]
    assert "Command:" in header and "Runtime:" in header and "Expected:" in header
    assert load_config(path).name == name


def test_gpu_configs_ask_for_mixed_precision():
    for name in ("faces", "general"):
        assert load_config(name).train.precision == "mixed_float16"
    assert (load_config("faces").train.batch_size, load_config("general").train.batch_size) == (32, 16)
