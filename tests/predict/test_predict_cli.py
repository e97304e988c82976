"""The predict command and Predictor.load on the tiny run: files, errors and calibrated output."""

from __future__ import annotations

import pytest
from builders import noise_image

from aiclassify import runs
from aiclassify.predict import Predictor, cli


def test_predictor_and_cli(tiny_run, encoded_images, tmp_path, capsys):
    paths = []
    for index, data in enumerate(encoded_images[:2]):
        paths.append(tmp_path / f"image{index}.img")
        paths[-1].write_bytes(data)
    broken = tmp_path / "broken.jpg"
    broken.write_text("hello")
    predictor = Predictor.load(tiny_run)
    results = predictor.predict_files([*paths, broken])
    probabilities = predictor.probabilities(encoded_images[:2])
    assert [r.probability_ai for r in results[:2]] == pytest.approx(probabilities)
    assert results[0].label == ("ai-generated" if probabilities[0] >= 0.5 else "real")
    assert results[2].error == "not an image"

    exit_code = cli.main(["--run", str(tiny_run), str(paths[0]), str(broken)])
    output = capsys.readouterr().out.splitlines()
    assert exit_code == 1
    assert output[0].startswith(f"{paths[0]}: ") and "P(AI-generated)" in output[0]
    assert output[1] == f"{broken}: error: not an image"


def test_predict_cli_on_a_folder_that_is_no_run(tmp_path, capsys):
    assert cli.main(["--run", str(tmp_path), "x.jpg"]) == 2
    assert "not a finished run" in capsys.readouterr().err


def test_predict_cli_reports_calibrated_probability_with_unchanged_label(tiny_run, tmp_path):
    import json
    import shutil

    calibrated_run = tmp_path / "calibrated"
    shutil.copytree(tiny_run, calibrated_run)
    runs.write_json(calibrated_run / runs.CALIBRATION_FILE, {"temperature": 3.0, "operating_points": []})
    path = tmp_path / "image.png"
    path.write_bytes(noise_image("PNG", size=(48, 40), seed=7))
    raw = Predictor.load(tiny_run).predict_files([path])[0]
    scaled = Predictor.load(calibrated_run).predict_files([path])[0]
    assert scaled.label == raw.label
    assert abs(scaled.probability_ai - 0.5) < abs(raw.probability_ai - 0.5)
    assert json.loads(json.dumps(scaled.__dict__))["probability_ai"] == scaled.probability_ai
