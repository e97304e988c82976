"""The config's Literal choices are the single source of the names other modules accept."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import keras
import pytest

from aiclassify import config as config_module
from aiclassify.config import AugmentName, Config, FilterName, ModelName, OptimizerName, load_config
from aiclassify.data import augment
from aiclassify.data.sources import KAGGLE_DATASETS
from aiclassify.filters import FILTER_NAMES, make_filter
from aiclassify.models import model_names


def choice_fields(schema: type = Config, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Every dotted key of ``schema`` declared as a Literal (or a tuple of one), with its choices."""
    choices = {}
    for key, kind in typing.get_type_hints(schema).items():
        if dataclasses.is_dataclass(kind):
            choices.update(choice_fields(kind, f"{prefix}{key}."))
            continue
        if typing.get_origin(kind) is tuple:
            kind = typing.get_args(kind)[0]
        if typing.get_origin(kind) is typing.Literal:
            choices[f"{prefix}{key}"] = typing.get_args(kind)
    return choices


def test_only_free_text_fields_are_plain_strings():
    hints = {
        f"{section}.{key}": kind
        for section in ("data", "model", "train", "export")
        for key, kind in typing.get_type_hints(typing.get_type_hints(Config)[section]).items()
    }
    assert sorted(key for key, kind in hints.items() if kind is str) == ["data.path", "model.pretrained"]


# What a choice needs beside it to load (an ensemble averages finished runs).
CHOICE_NEEDS = {("model.name", "ensemble"): ["model.members=[runs/one,runs/two]"]}


@pytest.mark.parametrize(("key", "choices"), sorted(choice_fields().items()))
def test_every_choice_loads_and_defaults_are_choices(key, choices):
    section, leaf = key.split(".")
    assert getattr(getattr(Config(), section), leaf) in (*choices, ())
    for choice in choices:
        value = f"[{choice}]" if key == "train.augment" else repr(choice)
        overrides = [f"{key}={value}", *CHOICE_NEEDS.get((key, choice), [])]
        loaded = getattr(getattr(load_config(None, overrides), section), leaf)
        assert loaded == ((choice,) if key == "train.augment" else choice)


def test_filter_names_come_from_the_config():
    assert typing.get_args(FilterName) == FILTER_NAMES
    for name in FILTER_NAMES:
        make_filter(name)


def test_augment_names_come_from_the_config_and_all_have_an_op():
    assert typing.get_args(AugmentName) == augment.AUGMENT_NAMES
    assert set(augment._OPS) == set(augment.AUGMENT_NAMES)


def test_model_names_come_from_the_config():
    assert model_names() == sorted(typing.get_args(ModelName))


def test_dataset_keys_are_the_kaggle_datasets():
    assert set(typing.get_args(config_module.DatasetKey)) == {"", *KAGGLE_DATASETS}


@pytest.mark.parametrize("name", typing.get_args(OptimizerName))
def test_every_optimizer_name_resolves_in_keras(name):
    optimizer = keras.optimizers.get({"class_name": name, "config": {"learning_rate": 1e-3}})
    assert isinstance(optimizer, keras.optimizers.Optimizer)


def test_config_module_does_not_import_tensorflow():
    code = "import sys, aiclassify.config; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
