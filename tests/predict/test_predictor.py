"""The one inference path: where thresholds come from, calibration, verdicts, batching, loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from builders import encode
from PIL import Image

from aiclassify import runs
from aiclassify.calibration import apply_temperature
from aiclassify.predict.band import EVALUATED_WITHOUT_BAND, NOT_EVALUATED
from aiclassify.predict.predictor import (
    LEGACY_CALIBRATION_SOURCE,
    ExplanationUnavailableError,
    Predictor,
    UnknownOperatingPointError,
    read_calibration,
)

POINTS = [
    {"name": "fpr_1pct", "target_fpr": 0.01, "threshold": 0.9, "fpr": 0.01, "tpr": 0.5},
    {"name": "balanced", "target_fpr": None, "threshold": 0.3, "fpr": 0.1, "tpr": 0.9},
]


def constant_score(value: float, calls: list | None = None):
    def score(images: list[bytes]) -> list[float]:
        if calls is not None:
            calls.append(len(images))
        return [value] * len(images)

    return score


def write_run(directory, metadata: dict, calibration: dict | None = None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / runs.METADATA_FILE).write_text(json.dumps(metadata))
    if calibration is not None:
        (directory / runs.CALIBRATION_FILE).write_text(json.dumps(calibration))
    return directory


BAND = {"lower": 0.2, "upper": 0.8, "target_fpr": 0.03, "empty": False, "validation": {"coverage": 0.9}}


def test_calibration_json_wins_over_legacy_metadata(tmp_path):
    legacy = {"threshold": 0.5, "calibration": {"temperature": 9.0}, "operating_points": []}
    run = write_run(tmp_path / "run", legacy, {"temperature": 2.0, "operating_points": POINTS})
    calibration, source = read_calibration(run, legacy)
    assert source == runs.CALIBRATION_FILE and calibration["temperature"] == 2.0


def test_legacy_metadata_calibration_is_still_served_and_says_so(tmp_path):
    legacy = {"threshold": 0.5, "calibration": {"temperature": 3.0}, "operating_points": POINTS}
    calibration, source = read_calibration(write_run(tmp_path / "run", legacy), legacy)
    assert source == LEGACY_CALIBRATION_SOURCE
    assert calibration["temperature"] == 3.0 and calibration["operating_points"] == POINTS


def test_an_unevaluated_run_has_no_calibration(tmp_path):
    metadata = {"threshold": 0.5}
    assert read_calibration(write_run(tmp_path / "run", metadata), metadata) == ({}, None)
    predictor = Predictor(constant_score(0.7), metadata)
    assert predictor.temperature == 1.0 and predictor.calibration_source is None
    assert predictor.describe_thresholds()["operating_points"] == []


def test_default_threshold_keeps_the_training_decision_on_the_calibrated_scale():
    predictor = Predictor(constant_score(0.6), {"threshold": 0.55}, {"temperature": 2.5})
    assert predictor.default_threshold == pytest.approx(float(apply_temperature(0.55, 2.5)))
    for raw in (0.5, 0.549, 0.551, 0.9):
        verdict = predictor.verdict(raw, *predictor.threshold_for())
        assert verdict.label == ("ai-generated" if raw >= 0.55 else "real")
        assert verdict.probability_ai == pytest.approx(float(apply_temperature(raw, 2.5)))
        assert verdict.probability_ai_uncalibrated == raw and verdict.operating_point is None


def test_operating_points_by_name_and_target_fpr():
    predictor = Predictor(
        constant_score(0.95), {"threshold": 0.5}, {"temperature": 1.0, "operating_points": POINTS}
    )
    assert predictor.threshold_for(target_fpr=0.01) == (0.9, "fpr_1pct")
    assert predictor.threshold_for(operating_point="balanced") == (0.3, "balanced")
    (verdict,) = predictor.predict([b"x"], operating_point="fpr_1pct")
    assert verdict.label == "ai-generated" and verdict.threshold == 0.9
    with pytest.raises(UnknownOperatingPointError, match="available: fpr_1pct"):
        predictor.threshold_for(target_fpr=0.2)
    with pytest.raises(UnknownOperatingPointError, match="has not been evaluated"):
        Predictor(constant_score(0.5), {}).threshold_for(operating_point="fpr_1pct")


def test_a_non_finite_operating_point_is_dropped():
    points = [*POINTS, {"name": "broken", "target_fpr": 0.2, "threshold": float("nan")}]
    predictor = Predictor(constant_score(0.5), {}, {"operating_points": points})
    assert [p.name for p in predictor.operating_points] == ["fpr_1pct", "balanced"]


@pytest.mark.parametrize("temperature", [0, -1, float("inf")])
def test_a_bad_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match="Received: temperature="):
        Predictor(constant_score(0.5), {}, {"temperature": temperature})


def test_probabilities_are_scored_in_batches():
    calls: list[int] = []
    predictor = Predictor(constant_score(0.25, calls), {}, batch_size=4)
    assert predictor.probabilities([b"x"] * 10).tolist() == [0.25] * 10
    assert calls == [4, 4, 2]
    assert predictor.probabilities([]).shape == (0,)


def test_predict_files_reports_bad_files_and_scores_the_rest(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8), (10, 200, 30)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_text("hello")
    calls: list[int] = []
    predictor = Predictor(constant_score(0.8, calls), {"threshold": 0.5})
    results = predictor.predict_files([good, broken, tmp_path / "missing.png"])
    assert [r.error for r in results] == [None, "not an image", "no such file"]
    assert results[0].label == "ai-generated" and results[0].probability_ai == pytest.approx(0.8)
    assert results[0].threshold == 0.5
    assert calls == [1]


def test_load_refuses_a_folder_that_is_neither_a_run_nor_a_saved_model(tmp_path):
    with pytest.raises(runs.RunDirectoryError, match="not a finished run"):
        Predictor.load(tmp_path)


def test_explanations_need_a_run_with_model_keras():
    with pytest.raises(ExplanationUnavailableError, match="model.keras"):
        Predictor(constant_score(0.5), {"image_size": 32}).keras_model()


def test_a_trained_run_loads_and_its_keras_model_matches_its_saved_model(tiny_run, demo_data):
    predictor = Predictor.load(tiny_run)
    assert predictor.run_dir == tiny_run and predictor.image_size == 32
    images = [path.read_bytes() for path in sorted(demo_data.rglob("*.jpg"))[:4]]
    assert len(images) == 4
    keras_predictor = predictor.with_model(predictor.keras_model())
    np.testing.assert_allclose(
        predictor.probabilities(images), keras_predictor.probabilities(images), atol=1e-5
    )


# --- the inconclusive band and warnings ---------------------------------------------------------------


def banded(band: dict | None = BAND, temperature: float = 1.0, **metadata) -> Predictor:
    calibration = {"temperature": temperature, "operating_points": POINTS}
    if band is not None:
        calibration["band"] = band
    return Predictor(constant_score(0.5), {"threshold": 0.5, **metadata}, calibration)


@pytest.mark.parametrize(
    ("probability", "verdict"),
    [
        (0.0, "real"),
        (0.2, "real"),  # lower itself is real
        (math.nextafter(0.2, 1.0), "inconclusive"),
        (0.5, "inconclusive"),
        (math.nextafter(0.8, 0.0), "inconclusive"),
        (0.8, "ai-generated"),  # upper itself is ai-generated
        (1.0, "ai-generated"),
    ],
)
def test_verdicts_across_the_band_edges(probability, verdict):
    predictor = banded()
    result = predictor.verdict(probability, *predictor.threshold_for())
    assert result.verdict == verdict
    assert result.label == ("ai-generated" if probability >= 0.5 else "real")  # the label is unchanged
    assert (result.band.lower, result.band.upper) == (0.2, 0.8)


def test_the_band_applies_to_the_calibrated_probability_whatever_the_operating_point():
    predictor = banded(temperature=2.0)
    raw = float(apply_temperature(0.85, 0.5))  # calibrates to 0.85 at T=2
    for point in (None, "fpr_1pct", "balanced"):
        threshold, name = predictor.threshold_for(operating_point=point)
        result = predictor.verdict(raw, threshold, name)
        assert result.probability_ai == pytest.approx(0.85) and result.verdict == "ai-generated"
        assert result.label == ("ai-generated" if threshold <= 0.85 else "real")
    assert predictor.verdict(raw, *predictor.threshold_for(operating_point="fpr_1pct")).label == "real"


def test_an_empty_band_leaves_nothing_inconclusive():
    empty = {"lower": math.nextafter(0.6, 0.0), "upper": 0.6, "target_fpr": 0.03, "empty": True}
    predictor = banded(empty)
    assert predictor.band.empty
    verdicts = [predictor.verdict(p, 0.5, None).verdict for p in (0.1, math.nextafter(0.6, 0.0), 0.6, 0.9)]
    assert verdicts == ["real", "real", "ai-generated", "ai-generated"]
    crossed = banded({"lower": 0.7, "upper": 0.4})  # a hand-edited band whose ends cross
    assert crossed.band.empty
    assert [crossed.verdict(p, 0.5, None).verdict for p in (0.3, 0.5, 0.8)] == [
        "real",
        "ai-generated",
        "ai-generated",
    ]


def test_without_a_band_the_verdict_is_the_label_and_describe_says_why():
    for predictor, note in (
        (Predictor(constant_score(0.5), {"threshold": 0.5}), NOT_EVALUATED),
        (banded(None), EVALUATED_WITHOUT_BAND),
        (banded({"lower": "x", "upper": 0.8}), "no band: the stored band is unreadable"),
        (banded({"lower": float("nan"), "upper": 0.8}), "no band: the stored band is not finite"),
    ):
        assert predictor.band is None and predictor.band_note.startswith(note)
        described = predictor.describe_thresholds()
        assert described["band"] is None and described["band_note"] == predictor.band_note
        for probability in (0.3, 0.5, 0.7):
            result = predictor.verdict(probability, 0.5, None)
            assert result.verdict == result.label and result.band is None
    assert NOT_EVALUATED == "no band: the run has not been evaluated"


def test_describe_thresholds_shows_the_band():
    described = banded().describe_thresholds()
    assert described["band"] == {
        "lower": 0.2,
        "upper": 0.8,
        "target_fpr": 0.03,
        "confidence": None,  # evaluated before bands had a confidence
        "notes": [],
        "empty": False,
        "validation": {"coverage": 0.9},
    }
    assert described["band_note"] is None
    note = "nothing is called ai-generated: 51 real validation images bound the error rate only to 5.7%"
    with_confidence = banded({**BAND, "confidence": 0.95, "notes": [note, 3]}).describe_thresholds()["band"]
    assert with_confidence["confidence"] == 0.95 and with_confidence["notes"] == [note]


def test_demo_models_warn_on_every_verdict(tmp_path):
    image = encode(Image.new("RGB", (64, 64), (200, 30, 40)), "JPEG", quality=90)
    plain = Predictor(constant_score(0.9), {"threshold": 0.5, "image_size": 32})
    assert not plain.is_demo and plain.predict([image])[0].warnings == ()
    for metadata in ({"demo": True}, {"dataset": {"source": "demo"}}):  # written by training; older runs
        predictor = Predictor(constant_score(0.9), {"threshold": 0.5, "image_size": 32, **metadata})
        assert predictor.is_demo
        [result] = predictor.predict([image])
        assert [w.code for w in result.warnings] == ["demo_model"]
        assert "detects nothing real" in result.warnings[0].message
    small = encode(Image.new("L", (16, 16), 90), "PNG")
    [result] = Predictor(constant_score(0.9), {"image_size": 32, "demo": True}).predict([small])
    assert [w.code for w in result.warnings] == ["smaller_than_training", "grayscale", "demo_model"]


def test_predict_files_carry_verdict_band_and_warnings(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (40, 40), 128).save(path)
    predictor = Predictor(
        constant_score(0.5), {"threshold": 0.4, "image_size": 32}, {"temperature": 1.0, "band": BAND}
    )
    [result] = predictor.predict_files([path])
    assert (result.label, result.verdict) == ("ai-generated", "inconclusive")
    assert result.band == {"lower": 0.2, "upper": 0.8}
    assert [w["code"] for w in result.warnings] == ["grayscale"]
