"""evaluate --faces: a labelled folder of whole photos through the face path (slow: reads ../shared,
skipped when absent)."""

from __future__ import annotations

import json
import shutil

import pytest

from aiclassify.evaluate.cli import main
from aiclassify.evaluate.report import evaluate_run
from aiclassify.faces import FaceDetector, FaceFinder
from aiclassify.predict import FacePath, Predictor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, shared_data, group_photo):
    """real/: four face photos and the three-face group photo; fake/: four face photos and a CIFAKE
    image (no face)."""
    sample = shared_data / "faces" / "real_vs_fake" / "real-vs-fake" / "test"
    folder = tmp_path_factory.mktemp("face-photos")
    for label in ("real", "fake"):
        (folder / label).mkdir()
        for path in sorted((sample / label).glob("*.jpg"))[:4]:
            shutil.copy(path, folder / label / path.name)
    (folder / "real" / "group.jpg").write_bytes(group_photo)
    cifake = sorted((shared_data / "cifake" / "test" / "FAKE").glob("*.jpg"))[0]
    shutil.copy(cifake, folder / "fake" / "cifake.jpg")
    return folder


def test_the_report_has_per_face_metrics_of_the_face_path(tiny_run, tmp_path, photo_folder):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    report = evaluate_run(
        run, tiers=[], draw_figures=False, write_calibration=False, faces={"photos": photo_folder}
    )
    section = report["faces"]["photos"]
    assert section["photos"] == 10 and section["failed"] == 0
    assert section["histogram"] == {"0": 1, "1": 8, "3": 1} and section["exactly_one_rate"] == 8 / 10
    assert section["faces"]["examples"] == 11
    assert section["photos_by_faces"]["examples"] == section["whole_photos"]["examples"] == 9

    predictor = Predictor.load(run)
    path = FacePath(FaceFinder(FaceDetector()), predictor)
    photos = sorted(photo_folder.glob("*/*.jpg"))
    scored = path.score([photo.read_bytes() for photo in photos])
    labels = [int(photo.parent.name == "fake") for photo in photos]
    threshold = report["threshold"]
    correct = [
        (verdict.verdict.probability_ai_uncalibrated >= threshold) == bool(label)
        for label, (_, verdicts) in zip(labels, scored, strict=True)
        for verdict in verdicts
    ]
    assert section["faces"]["accuracy"] == pytest.approx(sum(correct) / len(correct))
    assert "## Face path" in (run / "report.md").read_text()
    assert json.loads((run / "report.json").read_text())["faces"]["photos"]["faces"]["examples"] == 11


def test_faces_option_must_be_name_equals_folder(tmp_path, capsys):
    assert main(["--run", str(tmp_path), "--faces", "nofolder"]) == 2
    assert "--faces must look like NAME=DIR" in capsys.readouterr().err
