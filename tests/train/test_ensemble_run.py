"""An ensemble's run: finished runs assembled by the train command, evaluated and served like any."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import tiny_overrides

from aiclassify import runs
from aiclassify.config import ConfigError, load_config
from aiclassify.evaluate.report import evaluate_run
from aiclassify.export import PIXELS_SIGNATURE, load_saved_model
from aiclassify.predict import Predictor
from aiclassify.release import CARD_FILE, release
from aiclassify.train import train


@pytest.fixture(scope="module")
def second_member(tmp_path_factory, demo_data):
    """tiny_run's twin: another train.seed, the same validation/test split."""
    workdir = tmp_path_factory.mktemp("runs") / "seed7"
    train(load_config(None, tiny_overrides(demo_data, **{"train.seed": 7, "data.split_seed": 42})), workdir)
    return workdir


def _ensemble_config(demo_data, *members):
    return load_config(
        None,
        tiny_overrides(
            demo_data, **{"model.name": "ensemble", "model.members": [str(member) for member in members]}
        ),
    )


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, demo_data, tiny_run, second_member):
    workdir = tmp_path_factory.mktemp("runs") / "ensemble"
    train(_ensemble_config(demo_data, tiny_run, second_member), workdir)
    return workdir


def test_the_ensemble_run_records_its_members_and_their_summed_training_time(
    ensemble_run, tiny_run, second_member
):
    metadata = runs.read_metadata(ensemble_run)
    assert metadata["model"] == "ensemble"
    members = metadata["ensemble"]["members"]
    assert [member["folder"] for member in members] == [str(tiny_run), str(second_member)]
    assert [member["seed"] for member in members] == [42, 7]
    assert [member["started_from"] for member in members] == ["none", "none"]
    trained = [runs.read_metadata(run)["train_seconds"] for run in (tiny_run, second_member)]
    assert metadata["train_seconds"] == pytest.approx(sum(trained), abs=1e-3)
    assert metadata["parameters"] == sum(member["parameters"] for member in members)
    assert not (ensemble_run / runs.HISTORY_FILE).exists()


def test_the_exported_ensemble_scores_like_its_keras_model(ensemble_run):
    pixels = np.random.default_rng(1).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    keras_scores = Predictor.load(ensemble_run).keras_model().predict(pixels, verbose=0).ravel()
    exported = load_saved_model(ensemble_run / runs.SAVED_MODEL_DIR).signatures[PIXELS_SIGNATURE]
    np.testing.assert_allclose(exported(pixels=pixels)["probability_ai"].numpy(), keras_scores, atol=1e-5)


def test_the_ensemble_run_evaluates_and_ships_like_any_run(ensemble_run, tmp_path):
    copy = shutil.copytree(ensemble_run, tmp_path / "ensemble")
    report = evaluate_run(copy, tiers=["jpeg_q50"], draw_figures=False)
    assert report["test"]["accuracy"] == pytest.approx(
        runs.read_json(copy / runs.METRICS_FILE)["test"]["accuracy"]
    )
    assert (copy / runs.CALIBRATION_FILE).is_file()
    manifest = release(
        copy, tmp_path / "general", "python -m aiclassify.train --config ensemble.yaml", "test machine"
    )
    card = (tmp_path / "general" / CARD_FILE).read_text()
    assert "| architecture | ensemble of 2 (cnn_small2, cnn_small2) |" in card
    assert "the members' own runs summed" in card and "mean of the members' logits" in card
    for member in runs.read_metadata(copy)["ensemble"]["members"]:
        assert f"| {member['name']} | cnn_small2 | {member['seed']} | none |" in card
    # Grad-CAM cannot explain an ensemble, so its model.keras (every member's weights again) stays out
    assert not (tmp_path / "general" / runs.MODEL_FILE).exists()
    assert "No `model.keras`: Grad-CAM needs a convolutional layer" in card
    images = [(tmp_path / "general" / item["image"]).read_bytes() for item in manifest["reference"]]
    np.testing.assert_allclose(
        Predictor.load(tmp_path / "general").probabilities(images),
        [item["probability_ai"] for item in manifest["reference"]],
        atol=1e-6,
    )


def test_a_member_with_another_validation_split_is_refused(tmp_path, demo_data, tiny_run):
    other_split = tmp_path / "seed7-own-split"
    train(load_config(None, tiny_overrides(demo_data, **{"train.seed": 7})), other_split)
    with pytest.raises(ValueError, match=r"validation/test split.*seed7-own-split"):
        train(_ensemble_config(demo_data, tiny_run, other_split), tmp_path / "ensemble")
    assert not (tmp_path / "ensemble").exists()


def test_an_ensemble_config_needs_two_members():
    with pytest.raises((ConfigError, ValueError), match="two or more finished run folders"):
        load_config(None, ["model.name=ensemble", "model.members=[runs/one]"])
