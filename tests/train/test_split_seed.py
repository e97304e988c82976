"""data.split_seed: runs that differ in train.seed share one carved validation and test split."""

from __future__ import annotations

from conftest import tiny_overrides

from aiclassify import runs
from aiclassify.config import load_config
from aiclassify.evaluate.scoring import evaluation_splits
from aiclassify.train.trainer import prepare_data

CARVED = {"data.val_fraction": 0.25, "data.test_fraction": 0.25}


def _held_out(demo_data, tmp_path, **seeds) -> dict[str, list[str]]:
    """The validation and test paths training carves, after checking that evaluation carves the same."""
    config = load_config(None, tiny_overrides(demo_data, **CARVED, **seeds))
    workdir = tmp_path / "-".join(f"{key}{value}" for key, value in seeds.items())
    runs.prepare_workdir(config, workdir)
    trained = {
        name: sorted(sample.path for sample in samples)
        for name, samples in prepare_data(config, workdir)[0].splits.items()
        if name != "train"
    }
    evaluated = {
        name: sorted(s.path for s in samples) for name, samples in evaluation_splits(workdir)[1].items()
    }
    assert evaluated == trained
    return trained


def test_split_seed_fixes_the_carve_whatever_the_train_seed(demo_data, tmp_path):
    default = _held_out(demo_data, tmp_path, **{"train.seed": 42})
    assert _held_out(demo_data, tmp_path, **{"train.seed": 7, "data.split_seed": 42}) == default
    assert _held_out(demo_data, tmp_path, **{"train.seed": 7}) != default
