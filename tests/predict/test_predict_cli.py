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
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    output = [line for line in lines if not line.startswith("  evidence: ")]
    assert lines[2] == "  evidence: declared: none (metadata only; not part of the score)"
    assert exit_code == 1
    verdict = "ai-generated" if results[0].probability_ai >= 0.5 else "real"  # no band: the label
    assert output[0] == f"{paths[0]}: {verdict} (P(AI-generated) = {results[0].probability_ai:.4f})"
    assert output[1].startswith("  warning: demo_model: demo model:")  # the tiny run is a demo model
    assert output[2] == f"{broken}: error: not an image"
    assert "no band: the run has not been evaluated" in captured.err


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


def test_predict_cli_says_inconclusive_and_prints_warnings(tiny_run, tmp_path, capsys):
    import json
    import shutil

    from PIL import Image

    assert json.loads((tiny_run / runs.METADATA_FILE).read_text())["demo"] is True  # data.source: demo
    run = shutil.copytree(tiny_run, tmp_path / "banded")
    band = {"lower": -1.0, "upper": 2.0, "target_fpr": 0.03, "empty": False}  # nothing is confident
    runs.write_json(run / runs.CALIBRATION_FILE, {"temperature": 1.0, "operating_points": [], "band": band})
    grey = tmp_path / "grey.png"
    Image.new("L", (20, 20), 100).save(grey)
    assert cli.main(["--run", str(run), str(grey)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if not line.startswith("  evidence: ")]
    assert "  evidence: exif: no_camera_exif (info): " in captured.out
    probability = Predictor.load(run).predict_files([grey])[0].probability_ai
    assert lines[0] == f"{grey}: inconclusive (P(AI-generated) = {probability:.4f})"
    assert [line.split(":")[1].strip() for line in lines[1:]] == [
        "smaller_than_training",
        "grayscale",
        "demo_model",
    ]
    assert all(line.startswith("  warning: ") for line in lines[1:])
    assert "no band" not in captured.err

    assert cli.main(["--run", str(run), "--json", str(grey)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["verdict"] == "inconclusive" and record["label"] in ("real", "ai-generated")
    assert record["evidence"]["declared"] == "none" and record["evidence"]["findings"]
    assert record["band"] == {"lower": -1.0, "upper": 2.0}
    assert [w["code"] for w in record["warnings"]] == ["smaller_than_training", "grayscale", "demo_model"]
    assert all(w["message"] for w in record["warnings"])


def test_text_lines_name_the_label_at_a_requested_operating_point():
    from aiclassify.predict import FilePrediction

    warning = {"code": "grayscale", "message": "greyscale image"}
    result = FilePrediction("a.png", "real", 0.85, None, 0.9, "fpr_1pct", "ai-generated", None, [warning])
    assert cli.format_result(result) == [
        "a.png: ai-generated (P(AI-generated) = 0.8500) [label at fpr_1pct, threshold 0.9000: real]",
        "  warning: grayscale: greyscale image",
    ]
    plain = FilePrediction(
        "b.png", "real", 0.4, None, 0.5, None, "inconclusive", {"lower": 0.2, "upper": 0.8}, []
    )
    assert cli.format_result(plain) == ["b.png: inconclusive (P(AI-generated) = 0.4000)"]


def test_predict_cli_face_run_warns_no_face_when_it_is_the_face_model_too(tiny_run, tmp_path, capsys):
    import json

    path = tmp_path / "noise.png"
    path.write_bytes(noise_image("PNG", size=(96, 80), seed=3))
    assert cli.main(["--run", str(tiny_run), "--face-run", str(tiny_run), "--json", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["faces"] == [] and "no_face" in {w["code"] for w in result["warnings"]}
    assert cli.main(["--run", str(tiny_run), "--face-run", str(tiny_run), str(path)]) == 0
    assert "  faces: none found" in capsys.readouterr().out.splitlines()
    assert cli.main(["--run", str(tiny_run), "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] is None  # no face path asked for


def test_predict_cli_target_fpr_picks_the_stored_operating_point(calibrated_run, tmp_path, capsys):
    import json

    path = tmp_path / "noise.png"
    path.write_bytes(noise_image("PNG", size=(48, 40), seed=5))
    assert cli.main(["--run", str(calibrated_run), "--target-fpr", "0.01", "--json", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["operating_point"] == "fpr_1pct" and record["threshold"] == pytest.approx(0.9)
    assert record["label"] == ("ai-generated" if record["probability_ai"] >= 0.9 else "real")

    assert cli.main(["--run", str(calibrated_run), "--target-fpr", "0.2", str(path)]) == 2
    assert "fpr_1pct (target_fpr=0.01)" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one threshold at a time
        cli.parse_args(["--run", "r", "--target-fpr", "0.01", "--operating-point", "fpr_1pct", "x.png"])
