"""Releases: an evaluated run shipped as a model folder with a card, checksums and reference scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from aiclassify import runs
from aiclassify.release import (
    CARD_FILE,
    MANIFEST_FILE,
    ReleaseError,
    _check_sizes,
    main,
    release,
    sha256,
)

SHIPPED = sorted((REPO / "models").glob(f"*/{MANIFEST_FILE}"))


@pytest.fixture(scope="module")
def evaluated_copy(tiny_run, tmp_path_factory) -> Path:
    from aiclassify.evaluate.report import evaluate_run

    run_dir = shutil.copytree(tiny_run, tmp_path_factory.mktemp("release") / "run")
    evaluate_run(run_dir, tiers=["jpeg_q50"], draw_figures=False)
    return run_dir


@pytest.fixture(scope="module")
def released(evaluated_copy, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("models") / "general"
    manifest = release(evaluated_copy, out, "python -m aiclassify.train --config demo.yaml", "test machine")
    return out, manifest


def test_release_folder_has_what_the_predictor_needs_and_checksums(released):
    out, manifest = released
    for name in ("metadata.json", "calibration.json", "config.yaml", "report.json", "model.keras", CARD_FILE):
        assert (out / name).is_file(), name
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert json.loads((out / MANIFEST_FILE).read_text()) == manifest
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    assert set(manifest["files"]) == files
    for name, digest in manifest["files"].items():
        assert sha256(out / name) == digest, name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_reference_scores_reproduce_through_the_predictor(released):
    from aiclassify.predict import Predictor

    out, manifest = released
    predictor = Predictor.load(out)
    images = [(out / item["image"]).read_bytes() for item in manifest["reference"]]
    recorded = [item["probability_ai"] for item in manifest["reference"]]
    assert len(images) == 6 and len(set(recorded)) > 1
    np.testing.assert_allclose(predictor.probabilities(images), recorded, atol=1e-6)
    assert predictor.calibration_source == runs.CALIBRATION_FILE
    assert predictor.keras_model() is not None


def test_model_card_numbers_come_from_the_run_files(released, evaluated_copy):
    out, _ = released
    card = (out / CARD_FILE).read_text()
    report = json.loads((evaluated_copy / runs.REPORT_JSON).read_text())
    calibration = json.loads((evaluated_copy / runs.CALIBRATION_FILE).read_text())
    assert "A signal, not proof." in card and "## Must not be used for" in card
    assert "| scored on | the image |" in card  # the tiny run was trained without flips
    assert f"| accuracy | {report['test']['accuracy']:.4f} |" in card
    assert f"| JPEG q50 | {report['robustness'][1]['accuracy']:.4f} |" in card
    assert f"Temperature {calibration['temperature']:.4f}" in card
    assert "python -m aiclassify.train --config demo.yaml" in card and "test machine" in card
    assert "the weights: `saved_model/variables/variables.data-00000-of-00001`)" in card
    assert "`model.keras` (the same weights, no optimizer state) is there for Grad-CAM." in card
    band = report["band"]["test"]
    assert (
        f"| test | {band['coverage']:.4f} | {band['confident_accuracy']:.4f} | {band['fpr']:.4f} "
        f"| {band['recall']:.4f} |"
    ) in card
    assert "each with 0.95 confidence (Clopper-Pearson upper bound)" in card
    notes = calibration["band"]["notes"]  # the tiny run has too few validation images for 3 % at 95 %
    assert notes and all(f"- {note}" in card for note in notes)


def test_an_unevaluated_run_is_refused(tiny_run, tmp_path, capsys):
    with pytest.raises(ReleaseError, match="calibration.json"):
        release(tiny_run, tmp_path / "out", "cmd", "machine")
    assert not (tmp_path / "out").exists()
    argv = ["--run", str(tiny_run), "--out", str(tmp_path / "x"), "--command", "c", "--machine", "m"]
    assert main(argv) == 2
    assert "train and evaluate the run before releasing it" in capsys.readouterr().err


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"\0" * 2 * 1024 * 1024)
    with pytest.raises(ReleaseError, match=r"big.bin is 2.0 MB, over the 1 MB limit"):
        _check_sizes(tmp_path, limit_mb=1)


@pytest.mark.skipif(not SHIPPED, reason="no shipped model under models/ yet")
@pytest.mark.parametrize("manifest_path", SHIPPED, ids=lambda path: path.parent.name)
def test_each_shipped_model_matches_its_checksums_and_recorded_scores(manifest_path):
    from aiclassify.predict import Predictor

    folder = manifest_path.parent
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest["files"].items():
        assert (folder / name).stat().st_size <= 40 * 1024 * 1024, name
        assert sha256(folder / name) == digest, name
    predictor = Predictor.load(folder)
    images = [(folder / item["image"]).read_bytes() for item in manifest["reference"]]
    recorded = [item["probability_ai"] for item in manifest["reference"]]
    np.testing.assert_allclose(predictor.probabilities(images), recorded, atol=1e-5)


def test_the_card_says_a_model_trained_with_flips_is_scored_mirrored(evaluated_copy):
    from aiclassify.release import model_card

    metadata = json.loads((evaluated_copy / runs.METADATA_FILE).read_text())
    calibration = json.loads((evaluated_copy / runs.CALIBRATION_FILE).read_text())
    report = json.loads((evaluated_copy / runs.REPORT_JSON).read_text())
    card = model_card("general", {**metadata, "augment": ["hflip"]}, calibration, report, "c", "m")
    assert (
        "| scored on | the image and its mirror image, mean logit (trained with horizontal flips) |" in card
    )
