"""The classical baselines through the same commands as every model: train, evaluate, compare, serve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_overrides
from feature_models import tiny_extractor

from aiclassify import runs
from aiclassify.classical import keras_models
from aiclassify.classical.run import balanced_sample
from aiclassify.config import CONFIG_DIR, load_config
from aiclassify.data.layouts import Sample
from aiclassify.predict import Predictor

MODELS = ("logistic_pixels", "backbone_svm")
GRIDS = {
    "logistic_pixels": {"C": [0.01, 1.0]},
    "backbone_svm": {"C": [0.5, 5.0], "gamma_scale": [0.5, 2.0]},
}
GRID_OVERRIDES = [
    "classical.logistic_c=[0.01, 1.0]",
    "classical.svm_c=[0.5, 5.0]",
    "classical.svm_gamma=[0.5, 2.0]",
    "classical.cv_folds=2",
    "classical.max_train_images=30",
]


@pytest.fixture(scope="module")
def compared(tmp_path_factory, demo_data) -> Path:
    """``aiclassify compare`` of both baselines on the tiny demo data (backbone_svm on
    :func:`tiny_extractor`), with one robustness tier; returns its output folder."""
    from aiclassify.compare import main

    out = tmp_path_factory.mktemp("compare-classical")
    overrides = [*tiny_overrides(demo_data), *GRID_OVERRIDES]
    argv = ["--config", "demo", "--models", ",".join(MODELS), "--out", str(out), "--tiers", "jpeg_q50"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras_models, "feature_model", tiny_extractor)
        assert main([*argv, "--no-figures", *(item for o in overrides for item in ("--set", o))]) == 0
    return out


@pytest.mark.parametrize("model", MODELS)
def test_the_grid_search_picks_from_the_grid_and_metadata_records_it(compared, model):
    metadata = runs.read_metadata(compared / model)
    classical = metadata["classical"]
    search, best = classical["grid_search"], classical["best_params"]
    assert metadata["model"] == model and search["cv_folds"] == 2
    assert classical["train_images"] == 30 < classical["train_images_available"]
    assert len(search["candidates"]) == np.prod([len(values) for values in GRIDS[model].values()])
    for key, values in GRIDS[model].items():
        assert best[key] in values
    winner = min(search["candidates"], key=lambda candidate: candidate["rank"])
    assert {key: best[key] for key in winner["params"]} == winner["params"]
    assert search["best_cv_accuracy"] == winner["mean_accuracy"]


def test_the_svm_records_its_support_vectors_and_platt_calibration(compared):
    classical = runs.read_metadata(compared / "backbone_svm")["classical"]
    assert 2 <= classical["support_vectors"] <= classical["train_images"]
    assert classical["calibration"]["fitted_on"] == "validation" and classical["calibration"]["examples"] > 0
    assert classical["best_params"]["gamma"] == pytest.approx(
        classical["best_params"]["gamma_scale"] * classical["grid_search"]["gamma_unit"]
    )


@pytest.mark.parametrize("model", MODELS)
def test_the_run_directory_is_a_keras_runs_and_evaluate_reads_it(compared, model):
    run = compared / model
    for name in (
        runs.CONFIG_FILE,
        runs.MODEL_FILE,
        runs.METRICS_FILE,
        runs.REPORT_JSON,
        runs.CALIBRATION_FILE,
    ):
        assert (run / name).is_file(), name
    assert (run / runs.SAVED_MODEL_DIR / "saved_model.pb").is_file()
    assert runs.read_config(run).model.name == model
    metrics = runs.read_json(run / runs.METRICS_FILE)
    assert metrics["train_seconds"] > 0 and metrics["epochs_completed"] is None
    report = runs.read_json(run / runs.REPORT_JSON)
    assert report["model"] == model and report["data"]["test_examples"] == metrics["test"]["examples"]
    assert report["test"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert [tier["tier"] for tier in report["robustness"]] == ["clean", "jpeg_q50"]


@pytest.mark.parametrize("model", MODELS)
def test_the_predictor_serves_the_saved_model_as_model_keras_scores(compared, demo_data, model):
    predictor = Predictor.load(compared / model)
    assert predictor.image_size == 32 and predictor.temperature > 0
    images = [path.read_bytes() for path in sorted(demo_data.rglob("*.jpg"))[:6]]
    served = predictor.probabilities(images)
    keras_predictor = predictor.with_model(predictor.keras_model())
    np.testing.assert_allclose(served, keras_predictor.probabilities(images), atol=1e-5)
    assert np.ptp(served) > 0  # the fitted model, not the unfitted one (0.5 everywhere)


def test_compare_lists_both_baselines_from_their_reports(compared):
    rows = json.loads((compared / "comparison.json").read_text())["rows"]
    assert [row["model"] for row in rows] == list(MODELS)
    for row in rows:
        report = runs.read_json(compared / row["model"] / runs.REPORT_JSON)
        assert row["accuracy"] == report["test"]["accuracy"] and row["parameters"] == report["parameters"]
        assert row["epochs"] is None and row["train_seconds"] is not None
    assert "| logistic_pixels |" in (compared / "comparison.md").read_text()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.distribute=mirrored", "Received: distribute='mirrored'"),
        ("model.pretrained=/nowhere/model.keras", "Received: pretrained='/nowhere/model.keras'"),
    ],
)
def test_unsupported_options_fail_before_the_run_directory_is_made(tmp_path, demo_data, override, match):
    from aiclassify.train import train

    config = load_config(None, [*tiny_overrides(demo_data), "model.name=logistic_pixels", override])
    with pytest.raises(ValueError, match=match):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_training_sample_is_class_balanced_and_keeps_the_order():
    samples = [Sample(f"{i}.png", int(i % 3 == 0)) for i in range(30)]  # 10 AI-generated, 20 real
    kept = balanced_sample(samples, 12)
    assert [s.label for s in kept].count(1) == 6 and [s.label for s in kept].count(0) == 6
    assert kept == [s for s in samples if s in kept]
    assert [s.label for s in balanced_sample(samples, 26)].count(1) == 10  # the short class is taken whole
    assert balanced_sample(samples, 100) == samples


@pytest.mark.parametrize("name", MODELS)
def test_the_shipped_configs_search_a_grid_for_their_baseline_on_cifake(name):
    header = (CONFIG_DIR / f"{name}.yaml").read_text().split("\nname:")[0]
    assert f"--config {name}.yaml" in header and "Runtime:" in header and "Expected:" in header
    config = load_config(name)
    assert config.model.name == name and config.data.dataset == "cifake" and config.data.image_size == 32
    classical = config.classical
    grid = classical.logistic_c if name == "logistic_pixels" else classical.svm_c + classical.svm_gamma
    assert len(grid) > 2 and classical.max_train_images >= 5000
