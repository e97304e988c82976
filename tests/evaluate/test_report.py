"""``aiclassify.evaluate`` on (a copy of) the tiny demo run: report files, figures, metadata, consistency."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aiclassify.evaluate.robustness import TIERS

FIGURES = (
    "training_curves",
    "roc",
    "precision_recall",
    "confusion_matrix",
    "reliability",
    "robustness",
    "test_grid",
)


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory) -> Path:
    """A copy of the shared tiny run (cnn_small2, two epochs on 24 demo images per class), which
    evaluation writes into."""
    return shutil.copytree(tiny_run, tmp_path_factory.mktemp("evaluate") / "run")


@pytest.fixture(scope="module")
def evaluated(run_copy, demo_data) -> tuple[Path, dict, dict]:
    """Run the command once (with an OOD set); return the run, the report and the old metadata."""
    from aiclassify.evaluate.cli import main

    before = (run_copy / "metadata.json").read_bytes()
    fakes_only = run_copy.parent / "fakes-only"  # a set of one class, as from another generator
    shutil.copytree(demo_data / "fake", fakes_only / "fake")
    ood = ["--ood", f"demo-all={demo_data}", "--ood", f"demo-fakes={fakes_only}"]
    arguments = ["--run", str(run_copy), *ood, "--grid-images", "8", "--band-fpr", "0.05"]
    assert main([*arguments, "--band-confidence", "0.5"]) == 0
    return run_copy, json.loads((run_copy / "report.json").read_text()), before


def test_writes_report_and_every_figure(evaluated):
    run_dir, report, _ = evaluated
    markdown = (run_dir / "report.md").read_text()
    assert "Scores come from the pixels only" in markdown
    for heading in (
        "Test metrics",
        "Calibration",
        "Operating points",
        "Robustness tiers",
        "Out-of-distribution",
        "Inconclusive band",
    ):
        assert heading in markdown
    assert set(report["figures"]) == set(FIGURES)
    for relative in report["figures"].values():
        assert (run_dir / relative).stat().st_size > 1000
        assert f"({relative})" in markdown


def test_report_metrics_match_training_metrics(evaluated):
    """Bytes through serving_default score the test split exactly as training's pipeline did."""
    run_dir, report, _ = evaluated
    trained = json.loads((run_dir / "metrics.json").read_text())["test"]
    test = report["test"]
    assert test["examples"] == trained["examples"] == report["data"]["test_examples"]
    assert test["accuracy"] == pytest.approx(trained["accuracy"])
    assert test["roc_auc"] == pytest.approx(trained["roc_auc"], abs=1e-3)
    assert test["log_loss"] == pytest.approx(trained["loss"], abs=1e-3)
    assert np.sum(test["confusion_matrix"]) == test["examples"]
    assert {"real", "ai-generated", "macro avg", "weighted avg"} <= set(test["classification_report"])
    assert 0.0 <= test["average_precision"] <= 1.0


def test_evaluation_writes_calibration_json_and_never_rewrites_metadata(evaluated):
    run_dir, report, before = evaluated
    assert (run_dir / "metadata.json").read_bytes() == before
    calibration = json.loads((run_dir / "calibration.json").read_text())
    assert set(calibration) == {
        "temperature",
        "ece_before",
        "ece_after",
        "fitted_on",
        "operating_points",
        "band",
        "evaluated",
    }
    assert calibration["fitted_on"] == "validation" and calibration["temperature"] > 0
    assert calibration["temperature"] == report["calibration"]["temperature"]
    points = calibration["operating_points"]
    assert [p["name"] for p in points] == ["fpr_1pct", "fpr_5pct", "balanced"]
    assert [p["target_fpr"] for p in points] == [0.01, 0.05, None]
    for point, reported in zip(points, report["operating_points"], strict=True):
        assert set(point) == {"name", "target_fpr", "threshold", "fpr", "tpr"}
        assert point["threshold"] == reported["threshold"]
        assert point["target_fpr"] is None or point["fpr"] <= point["target_fpr"]
        assert set(reported["test"]) == {"fpr", "tpr"}


def test_calibration_json_stores_the_band_fitted_on_validation(evaluated):
    from aiclassify.calibration import apply_temperature
    from aiclassify.evaluate.operating_points import band_summary
    from aiclassify.evaluate.scoring import evaluation_splits, score_samples
    from aiclassify.predict import Predictor

    run_dir, report, _ = evaluated
    calibration = json.loads((run_dir / "calibration.json").read_text())
    band = calibration["band"]
    stored = {"lower", "upper", "target_fpr", "confidence", "empty", "validation"}
    assert set(band) - {"note", "notes"} == stored
    assert band["target_fpr"] == 0.05  # --band-fpr
    assert band["confidence"] == 0.5  # --band-confidence
    assert set(band["validation"]) == {"coverage", "confident_accuracy", "fpr", "recall", "fnr"}
    assert band["lower"] < band["upper"]
    assert band["validation"]["fpr"] <= 0.05 and band["validation"]["fnr"] <= 0.05
    assert ("note" in band) == band["empty"]
    # the stored rates are those of the stored thresholds on the calibrated validation scores
    predictor = Predictor.load(run_dir)
    _, splits = evaluation_splits(run_dir, None)
    validation = score_samples(predictor, "validation", splits["validation"])
    scores = apply_temperature(validation.probabilities, calibration["temperature"])
    again = band_summary(validation.labels, scores, band["lower"], band["upper"])
    assert {key: again[key] for key in band["validation"]} == pytest.approx(band["validation"])
    # report.json: the rule, both splits, with counts
    reported = report["band"]
    assert (reported["lower"], reported["upper"]) == (band["lower"], band["upper"])
    assert "inconclusive" in reported["rule"]
    test = reported["test"]
    counts = test["counts"]
    assert counts["images"] == report["data"]["test_examples"]
    assert counts["called_ai_generated"] + counts["called_real"] + counts["inconclusive"] == counts["images"]
    assert test["coverage"] == pytest.approx(1 - counts["inconclusive"] / counts["images"])
    # the predictor serves exactly the stored band
    assert (predictor.band.lower, predictor.band.upper) == (band["lower"], band["upper"])
    assert predictor.band_note is None
    assert predictor.describe_thresholds()["band"]["validation"] == band["validation"]
    markdown = (run_dir / "report.md").read_text()
    assert "## Inconclusive band" in markdown and "coverage" in markdown


def test_report_md_says_when_the_band_is_empty(evaluated):
    from aiclassify.evaluate.markdown import render_markdown

    _, report, _ = evaluated
    note = "empty band: the thresholds crossed on validation (lower 0.6 >= upper 0.5)"
    markdown = render_markdown({**report, "band": {**report["band"], "empty": True, "note": note}})
    assert f"**{note}**" in markdown
    assert "crossed" not in render_markdown(report) or report["band"]["empty"]
    without = {key: value for key, value in report.items() if key != "band"}  # reports of older runs
    assert "Inconclusive band" not in render_markdown(without)


def test_report_md_states_the_band_confidence_and_its_notes(evaluated):
    from aiclassify.evaluate.markdown import render_markdown

    _, report, _ = evaluated
    note = "nothing is called ai-generated: 8 real validation images bound the error rate only to 31.2%"
    band = {**report["band"], "confidence": 0.95, "notes": [note]}
    markdown = render_markdown({**report, "band": band})
    assert "each share bounded with 0.95 confidence" in markdown
    assert f"**N{note[1:]}.**" in markdown
    plain = render_markdown({**report, "band": {**report["band"], "confidence": 0.0, "notes": []}})
    assert "bounded with" not in plain and "Nothing is called" not in plain


def test_band_fpr_must_be_a_fraction(tmp_path, capsys):
    from aiclassify.evaluate.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--run", str(tmp_path), "--band-fpr", "3"])
    assert exited.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--run", str(tmp_path), "--band-confidence", "1"])
    assert exited.value.code == 2 and "below 1" in capsys.readouterr().err


def test_a_run_evaluated_twice_serves_the_thresholds_its_file_says(evaluated, tmp_path):
    from aiclassify.evaluate.report import evaluate_run
    from aiclassify.predict import Predictor

    run_dir, _, before = evaluated
    copy = shutil.copytree(run_dir, tmp_path / "run")
    first = json.loads((copy / "calibration.json").read_text())
    evaluate_run(copy, tiers=[], draw_figures=False)
    second = json.loads((copy / "calibration.json").read_text())
    assert (copy / "metadata.json").read_bytes() == before
    assert second["temperature"] == pytest.approx(first["temperature"])
    predictor = Predictor.load(copy)
    assert predictor.calibration_source == "calibration.json"
    assert predictor.temperature == second["temperature"]
    served = {p.name: (p.target_fpr, p.threshold) for p in predictor.operating_points}
    assert served == {p["name"]: (p["target_fpr"], p["threshold"]) for p in second["operating_points"]}
    for point in second["operating_points"]:
        assert predictor.threshold_for(operating_point=point["name"]) == (point["threshold"], point["name"])
    assert predictor.default_threshold == pytest.approx(
        float(predictor.calibrate(predictor.raw_threshold)), abs=0.0
    )


def test_robustness_tiers_and_ood_sets(evaluated):
    _, report, _ = evaluated
    rows = {row["tier"]: row for row in report["robustness"]}
    assert list(rows) == list(TIERS)
    assert rows["clean"]["accuracy"] == report["test"]["accuracy"]
    for row in rows.values():
        assert 0.0 <= row["accuracy"] <= 1.0 and row["examples"] == report["data"]["test_examples"]
    assert report["ood"]["demo-all"]["examples"] == 48
    fakes = report["ood"]["demo-fakes"]
    assert fakes["examples"] == 24 and fakes["roc_auc"] is None
    assert fakes["accuracy"] == pytest.approx(fakes["recall"])  # every image is AI: the share caught


def test_robustness_transforms_return_decodable_images(demo_data):
    from PIL import Image

    from aiclassify.data.layouts import list_images

    original = Path(list_images(demo_data / "real")[0]).read_bytes()
    for name, transform in TIERS.items():
        if transform is not None:
            data = transform(original)
            assert data != original, name
            Image.open(io.BytesIO(data)).verify()


def test_cli_reports_errors_and_registers_commands(tmp_path, capsys):
    from aiclassify.cli import COMMANDS
    from aiclassify.evaluate.cli import main

    assert COMMANDS["evaluate"][0] == "aiclassify.evaluate.cli"
    assert COMMANDS["compare"][0] == "aiclassify.compare"
    assert main(["--run", str(tmp_path)]) == 2
    assert "not a finished run" in capsys.readouterr().err


def test_run_without_saved_model_is_scored_with_model_keras(evaluated, tmp_path):
    """model.keras behind the same decoder gives the SavedModel's numbers."""
    from aiclassify.evaluate.report import evaluate_run

    run_dir, report, _ = evaluated
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("saved_model", "figures"))
    again = evaluate_run(copy, tiers=[], draw_figures=False, write_calibration=False)
    assert again["figures"] == {} and [row["tier"] for row in again["robustness"]] == ["clean"]
    assert again["test"]["accuracy"] == report["test"]["accuracy"]
    assert again["test"]["roc_auc"] == pytest.approx(report["test"]["roc_auc"], abs=1e-6)
    assert again["calibration"]["temperature"] == pytest.approx(
        report["calibration"]["temperature"], rel=1e-3
    )
