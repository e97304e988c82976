"""The config schema: strict loading, overrides, shipped configs."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import yaml
from conftest import REPO

from aiclassify.config import (
    CONFIG_DIR,
    Config,
    ConfigError,
    DegradeConfig,
    FineTuneConfig,
    load_config,
    save_config,
    to_dict,
)


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


SHIPPED_CONFIGS = sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def test_the_product_demo_and_literature_configs_are_shipped():
    literature = list(LITERATURE_MODELS)
    assert set(SHIPPED_CONFIGS) >= {"faces", "general", "cifake", "demo", "demo-general", *literature}


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_shipped_configs_load_and_document_themselves(name):
    path = CONFIG_DIR / f"{name}.yaml"
    header = path.read_text().split("\nname:")[0]
    assert "Command:" in header and "Runtime:" in header and "Expected:" in header
    assert f"--config {name}.yaml" in header
    assert load_config(path).name == name


LITERATURE_MODELS = {
    "vgg16": True,  # ImageNet-pretrained, fine-tuned in two phases
    "resnet50": True,
    "efficientnetb0": True,
    "densenet121": True,
    "resnet18": True,
    "vit_b16": True,
    "lenet5": False,  # trained from scratch
    "lenet2": False,
    "cnn_small_nopool": False,
}


@pytest.mark.parametrize(("model", "pretrained"), sorted(LITERATURE_MODELS.items()))
def test_literature_configs_train_their_model_on_cifake(model, pretrained):
    config = load_config(model)  # configs/<model>.yaml
    header = (CONFIG_DIR / f"{model}.yaml").read_text().split("\nname:")[0]
    assert config.model.name == model and config.data.dataset == "cifake" and config.data.image_size == 32
    if not pretrained:
        assert config.model.pretrained == "none" and not config.train.fine_tune.enabled
        return
    assert config.model.pretrained == "imagenet" and config.model.resize_to == 224
    assert 0 < config.train.fine_tune.frozen_epochs < config.train.epochs
    assert config.train.fine_tune_learning_rate() < config.train.learning_rate
    assert "~/.keras/models/" in header and "--set model.pretrained=none" in header
    assert "from scratch" in header  # a run without the weights must say what it is
    scratch = load_config(model, ["model.pretrained=none", "train.fine_tune.frozen_epochs=0"])
    assert not scratch.train.fine_tune.enabled


# --- train.fine_tune ---------------------------------------------------------------------------------


def test_fine_tuning_is_off_by_default_and_loads_from_yaml_and_overrides(tmp_path):
    assert load_config().train.fine_tune == FineTuneConfig() and not FineTuneConfig().enabled
    path = tmp_path / "fine.yaml"
    path.write_text("train:\n  epochs: 5\n  fine_tune:\n    frozen_epochs: 2\n    learning_rate: 0.0001\n")
    config = load_config(path, ["train.fine_tune.unfreeze_top_layers=4"])
    assert config.train.fine_tune == FineTuneConfig(
        frozen_epochs=2, unfreeze_top_layers=4, learning_rate=0.0001
    )
    assert config.train.fine_tune_learning_rate() == 0.0001
    default_rate = load_config(None, ["train.fine_tune.frozen_epochs=1", "train.learning_rate=0.01"])
    assert default_rate.train.fine_tune_learning_rate() == pytest.approx(0.001)
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["fine_tune"]
    assert saved == {"frozen_epochs": 2, "unfreeze_top_layers": 4, "learning_rate": 0.0001}
    assert load_config(None, ["train.fine_tune.learning_rate=null"]).train.fine_tune.learning_rate is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["train.epochs=3", "train.fine_tune.frozen_epochs=3"],
            "in 'train': fine_tune.frozen_epochs must be less than epochs: phase 2 needs at least one epoch. "
            "Received: frozen_epochs=3, epochs=3",
        ),
        (["train.fine_tune.frozen_epochs=-1"], "frozen_epochs must be >= 0. Received: frozen_epochs=-1"),
        (
            ["train.fine_tune.unfreeze_top_layers=-2"],
            "unfreeze_top_layers must be >= 0. Received: unfreeze_top_layers=-2",
        ),
        (["train.fine_tune.learning_rate=0"], "learning_rate must be > 0. Received: learning_rate=0.0"),
        (["train.fine_tune.learning_rate=fast"], "'train.fine_tune.learning_rate' must be float or null"),
        (["train.fine_tune.frozen_epoch=1"], "Did you mean 'train.fine_tune.frozen_epochs'?"),
    ],
)
def test_fine_tuning_values_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


def test_gpu_configs_ask_for_mixed_precision():
    for name in ("faces", "general"):
        assert load_config(name).train.precision == "mixed_float16"
    assert (load_config("faces").train.batch_size, load_config("general").train.batch_size) == (32, 16)


def test_bad_choice_in_yaml_names_key_choices_and_nearest(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  precision: mixed_float\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}: 'train.precision' must be one of ['float32', 'mixed_float16']. "
        "Did you mean 'mixed_float16'? Received: 'mixed_float'"
    )


def test_bad_choice_in_override_names_key_choices_and_nearest():
    with pytest.raises(ConfigError) as error:
        load_config("demo", ["train.precision=mixed_float"])
    message = str(error.value)
    assert "'train.precision' must be one of ['float32', 'mixed_float16']" in message
    assert "Did you mean 'mixed_float16'?" in message and "Received: 'mixed_float'" in message


@pytest.mark.parametrize(
    ("override", "key", "nearest"),
    [
        ("data.source=dmeo", "data.source", "demo"),
        ("data.dataset=face", "data.dataset", "faces"),
        ("data.cache=disc", "data.cache", "disk"),
        ("data.filter=srn", "data.filter", "srm"),
        ("model.name=cnn_small5", "model.name", "cnn_small"),
        ("model.padding=vaild", "model.padding", "valid"),
        ("train.optimizer=Adam", "train.optimizer", "adam"),
        ("train.lr_schedule=cosin", "train.lr_schedule", "cosine"),
        ("train.distribute=mirror", "train.distribute", "mirrored"),
        ("train.monitor=val_acc", "train.monitor", "val_"),
    ],
)
def test_every_choice_field_is_checked(override, key, nearest):
    with pytest.raises(ConfigError, match=rf"'{key}' must be one of \[.*\]\. Did you mean '{nearest}"):
        load_config(None, [override])


def test_choice_without_a_near_value_lists_the_choices():
    with pytest.raises(ConfigError, match=r"'model.name' must be one of \['cnn5', .*\]\. Received: 'xyz'$"):
        load_config(None, ["model.name=xyz"])


def test_choice_of_the_wrong_type_names_the_type():
    with pytest.raises(ConfigError, match=r"'data.cache' must be one of .* Received: False \(bool\)"):
        load_config(None, ["data.cache=no"])


def test_list_items_are_checked_one_by_one(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  augment: [hflip, rotaton]\n")
    with pytest.raises(
        ConfigError, match=r"'train.augment\[1\]' must be one of \['hflip', .*\]\. Did you mean 'rotation'\?"
    ):
        load_config(path)
    with pytest.raises(ConfigError, match=r"'train.augment\[0\]' .* Received: 'flip'"):
        load_config(None, ["train.augment=[flip]"])
    assert load_config(None, ["train.augment=[hflip, jpeg]"]).train.augment == ("hflip", "jpeg")


def test_a_choice_list_must_be_a_list():
    with pytest.raises(
        ConfigError,
        match=r"'train.augment' must be a list of values from \['hflip', .*Received: 'hflip' \(str\)",
    ):
        load_config(None, ["train.augment=hflip"])


def test_empty_dataset_key_is_a_valid_choice():
    assert load_config(None, ["data.dataset="]).data.dataset == ""


def test_a_shipped_config_is_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("faces.yaml")
    assert config.name == "faces" and config.data.dataset == "faces"


def test_train_command_from_another_directory_finds_the_config_and_names_the_missing_data(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "no-such-faces"
    result = subprocess.run(
        [sys.executable, "-m", "aiclassify.train", "--config", "faces.yaml", "--set", f"data.path={missing}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert f"Dataset folder not found: {missing}" in result.stderr
    assert "aiclassify data download faces" in result.stderr
    assert not (tmp_path / "runs").exists()


# --- train.degrade, train.validation_degraded, data.train_crop ---------------------------------------


def test_degradations_are_off_by_default():
    config = load_config()
    assert config.train.degrade == DegradeConfig()
    assert set(config.train.degrade.probabilities.values()) == {0.0}
    assert config.train.validation_degraded is False and config.data.train_crop is False
    assert (DegradeConfig().blur_sigma_max, DegradeConfig().jpeg_quality_min) == (3.0, 30)
    assert (DegradeConfig().downscale_min_scale, DegradeConfig().crop_min_fraction) == (0.5, 0.8)


def test_nested_degrade_section_loads_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "robust.yaml"
    path.write_text("train:\n  degrade:\n    jpeg_prob: 0.25\n    jpeg_quality_min: 50\n")
    config = load_config(path, ["train.degrade.blur_prob=0.5", "train.degrade.blur_sigma_max=2"])
    degrade = config.train.degrade
    assert (degrade.jpeg_prob, degrade.jpeg_quality_min) == (0.25, 50)
    assert (degrade.blur_prob, degrade.blur_sigma_max) == (0.5, 2.0)
    assert degrade.crop_prob == 0.0  # untouched default
    assert load_config(None, ["train.validation_degraded=true"]).train.validation_degraded is True
    assert load_config(None, ["data.train_crop=true"]).data.train_crop is True


def test_degrade_section_round_trips(tmp_path):
    config = load_config("faces.yaml", ["train.degrade.crop_prob=0.1"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["degrade"]["crop_prob"] == 0.1


def test_unknown_degrade_key_names_the_nested_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  degrade:\n    blur_prb: 0.5\n")
    with pytest.raises(
        ConfigError, match=r"unknown key 'train.degrade.blur_prb'\. Did you mean 'train.degrade.blur_prob'"
    ):
        load_config(path)


def test_degrade_must_be_a_mapping_of_typed_values():
    with pytest.raises(ConfigError, match=r"'train.degrade' must be a mapping"):
        load_config(None, ["train.degrade=0.5"])
    with pytest.raises(ConfigError, match=r"'train.degrade.jpeg_quality_min' must be int"):
        load_config(None, ["train.degrade.jpeg_quality_min=50.5"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("blur_prob=1.5", "blur_prob must be in [0, 1]. Received: blur_prob=1.5"),
        ("jpeg_prob=-0.1", "jpeg_prob must be in [0, 1]. Received: jpeg_prob=-0.1"),
        ("downscale_prob=2", "downscale_prob must be in [0, 1]. Received: downscale_prob=2.0"),
        ("crop_prob=1.01", "crop_prob must be in [0, 1]. Received: crop_prob=1.01"),
        ("blur_sigma_max=-1", "blur_sigma_max must be >= 0. Received: blur_sigma_max=-1.0"),
        ("jpeg_quality_min=101", "jpeg_quality_min must be in [0, 100]. Received: jpeg_quality_min=101"),
        ("downscale_min_scale=0", "downscale_min_scale must be in (0, 1]. Received: downscale_min_scale=0.0"),
        ("crop_min_fraction=1.2", "crop_min_fraction must be in (0, 1]. Received: crop_min_fraction=1.2"),
    ],
)
def test_degrade_ranges_are_checked(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [f"train.degrade.{override}"])
    assert str(error.value) == f"defaults: in 'train.degrade': {message}"
    with pytest.raises(ValueError, match=re.escape(message)):
        DegradeConfig(**{override.split("=")[0]: float(override.split("=")[1])})


def test_range_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  degrade:\n    jpeg_prob: 3\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: in 'train.degrade': jpeg_prob must be"):
        load_config(path)


@pytest.mark.parametrize("name", ["cifake", "faces", "general"])
def test_shipped_product_configs_train_the_robust_recipe(name):
    config = load_config(name)
    assert config.train.validation_degraded is True
    assert all(p > 0 for p in config.train.degrade.probabilities.values())
    assert config.train.early_stopping_patience > 3
    assert config.data.train_crop is (name != "cifake")
    measured = quoted_report(name)
    if measured is None:
        header = (CONFIG_DIR / f"{name}.yaml").read_text().split("\nname:")[0]
        assert "NOT YET MEASURED with this recipe" in header and "without" in header.lower()
    else:  # the report it names was trained with this recipe
        assert load_config(measured / "config.yaml").train == config.train


def quoted_report(name: str):
    """The docs/results folder a shipped config's header cites, after checking that the header
    quotes that report's clean test accuracy; None when it cites none."""
    header = (CONFIG_DIR / f"{name}.yaml").read_text().split("\nname:")[0]
    measured = re.search(r"docs/results/([\w-]+)/\s*#?\s*report\.md", header)
    if measured is None:
        return None
    folder = REPO / "docs" / "results" / measured.group(1)
    report = json.loads((folder / "report.json").read_text())
    assert f"{100 * report['test']['accuracy']:.2f}% clean test accuracy" in header
    return folder


def test_the_cifake_ensemble_averages_cifake_runs_and_quotes_its_report():
    ensemble, cifake = load_config("cifake-ensemble"), load_config("cifake")
    assert ensemble.model.name == "ensemble" and len(ensemble.model.members) >= 2
    assert ensemble.data == cifake.data and ensemble.train.augment == cifake.train.augment
    measured = quoted_report("cifake-ensemble")
    assert measured is not None
    assert load_config(measured / "config.yaml").model == ensemble.model


def test_the_recipe_suits_each_input_size():
    cifake, faces = load_config("cifake").train.degrade, load_config("faces").train.degrade
    assert cifake.blur_sigma_max <= 1.5 and cifake.jpeg_quality_min >= 50
    assert (faces.blur_prob, faces.blur_sigma_max, faces.jpeg_prob, faces.jpeg_quality_min) == (
        0.5,
        3.0,
        0.5,
        30,
    )
    assert load_config("general").train.degrade == faces


@pytest.mark.parametrize("name", ["demo", "demo-general"])
def test_demo_configs_train_without_the_recipe(name):
    config = load_config(name)
    assert config.train.degrade == DegradeConfig() and not config.train.validation_degraded
    assert not config.data.train_crop
