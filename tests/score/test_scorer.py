"""score_folder and the score command on the tiny run: rows equal to the Predictor's, both formats,
errors listed, resuming, and what refuses to mix."""

from __future__ import annotations

import csv
import json

import pytest
from builders import image_writer, noise_image, truncated

from aiclassify.predict import Predictor
from aiclassify.score import cli, find_images, score_folder
from aiclassify.score.rows import CSV_COLUMNS, FIELDS, flatten

write_image = image_writer(0)


@pytest.fixture
def folder(tmp_path):
    """Nine images in five formats (one large enough for crops, one in a subfolder), a truncated
    JPEG, a text file named .png, and files the walk leaves out (no image suffix, hidden)."""
    root = tmp_path / "images"
    for index, fmt in enumerate(("JPEG", "PNG", "WEBP", "BMP", "GIF")):
        (root / f"noise{index}.{fmt.lower()}").parent.mkdir(parents=True, exist_ok=True)
        (root / f"noise{index}.{fmt.lower()}").write_bytes(noise_image(fmt, size=(48, 40), seed=index))
    write_image(root / "large.png", size=(96, 80))
    for index in range(3):
        write_image(root / "sub" / f"small{index}.jpg", size=(32, 32))
    (root / "broken.jpg").write_bytes(truncated(noise_image("JPEG", size=(64, 64), seed=9), 0.3))
    (root / "notes.png").write_text("not an image")
    (root / "readme.txt").write_text("ignored")
    (root / ".hidden.jpg").write_bytes(noise_image("JPEG", seed=3))
    return root


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_find_images_sorted_recursive_and_not(folder):
    paths, ignored = find_images(folder)
    names = [str(p.relative_to(folder)) for p in paths]
    assert names == sorted(names) and len(names) == 11 and "sub/small0.jpg" in names
    assert ignored == 1  # readme.txt; .hidden.jpg is left out silently
    top, _ = find_images(folder, recursive=False)
    assert [p for p in paths if p.parent == folder] == top


def test_rows_are_the_predictors_verdicts_in_both_formats(folder, calibrated_run, tmp_path):
    out = tmp_path / "results.jsonl"
    summary = score_folder(
        folder, calibrated_run, out, batch_size=3, operating_point="fpr_5pct", progress=False
    )
    assert (summary.found, summary.scored, summary.errors, summary.ignored) == (11, 11, 2, 1)
    rows = read_jsonl(out)
    assert [list(row) for row in rows] == [list(FIELDS)] * 11

    paths, _ = find_images(folder)
    expected = Predictor.load(calibrated_run).predict_files(paths, operating_point="fpr_5pct")
    for row, prediction in zip(rows, expected, strict=True):
        assert row["path"] == prediction.path and row["error"] == prediction.error
        if prediction.error is None:
            assert row["probability_ai"] == pytest.approx(prediction.probability_ai, rel=1e-6)
        for key in ("label", "verdict", "band", "warnings", "evidence"):
            assert row[key] == getattr(prediction, key), key
        assert row["run"] == str(calibrated_run.absolute())
        assert (row["threshold"], row["operating_point"]) == (0.7, "fpr_5pct")
    errors = {row["path"].rsplit("/", 1)[-1]: row["error"] for row in rows if row["error"]}
    assert errors["notes.png"] == "not an image" and errors["broken.jpg"].startswith("unreadable image")
    large = next(row for row in rows if row["path"].endswith("large.png"))
    assert (large["width"], large["height"], large["format"]) == (96, 80, "PNG")

    csv_out = tmp_path / "results.csv"
    score_folder(folder, calibrated_run, csv_out, batch_size=3, operating_point="fpr_5pct", progress=False)
    with csv_out.open(newline="") as stream:
        table = list(csv.DictReader(stream))
    assert list(table[0]) == list(CSV_COLUMNS)
    for cells, row in zip(table, rows, strict=True):
        flat = flatten(row)
        assert cells["path"] == flat["path"] and cells["warnings"] == (flat["warnings"] or "")
        assert cells["evidence_findings"] == (flat["evidence_findings"] or "")
        if row["error"] is None:
            assert float(cells["probability_ai"]) == pytest.approx(row["probability_ai"], rel=1e-6)
            assert float(cells["threshold"]) == 0.7 and cells["band_lower"] == ""  # no band in this run


def test_resume_skips_written_rows_and_cuts_a_partial_line(folder, tiny_run, tmp_path):
    for suffix in (".csv", ".jsonl"):
        out = tmp_path / f"results{suffix}"
        first = score_folder(folder, tiny_run, out, batch_size=4, limit=5, progress=False)
        assert (first.scored, first.already_done) == (5, 0)
        written = out.read_bytes()
        with out.open("ab") as stream:
            stream.write(written.splitlines(keepends=True)[-1][:20])  # a row torn by a kill
        second = score_folder(folder, tiny_run, out, batch_size=4, progress=False)
        assert (second.found, second.already_done, second.scored, second.dropped_bytes) == (11, 5, 6, 20)
        assert out.read_bytes().startswith(written)
        lines = out.read_text().splitlines()[1 if suffix == ".csv" else 0 :]
        assert len(lines) == 11
        third = score_folder(folder, tiny_run, out, progress=False)
        assert (third.scored, third.already_done, third.earlier_errors) == (0, 11, 2)


def test_an_output_of_another_run_or_threshold_is_refused(folder, tiny_run, calibrated_run, tmp_path):
    out = tmp_path / "results.csv"
    score_folder(folder, tiny_run, out, limit=2, progress=False)
    before = out.read_bytes()
    with pytest.raises(ValueError, match="holds results of run .*, not of run ") as error:
        score_folder(folder, calibrated_run, out, progress=False)
    assert str(tiny_run.absolute()) in str(error.value) and str(calibrated_run.absolute()) in str(error.value)
    calibrated_out = tmp_path / "calibrated.jsonl"
    score_folder(folder, calibrated_run, calibrated_out, limit=2, progress=False)
    with pytest.raises(ValueError, match="operating point fpr_1pct"):
        score_folder(folder, calibrated_run, calibrated_out, operating_point="fpr_1pct", progress=False)
    assert out.read_bytes() == before


def test_files_that_are_not_ours_are_refused(folder, tiny_run, tmp_path):
    with pytest.raises(ValueError, match=r"must end in .csv or .jsonl. Received: out="):
        score_folder(folder, tiny_run, tmp_path / "results.txt", progress=False)
    other = tmp_path / "other.csv"
    other.write_text("name,score\na.jpg,1\n")
    with pytest.raises(ValueError, match="does not have the columns"):
        score_folder(folder, tiny_run, other, progress=False)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"path": "a.jpg"\n')
    with pytest.raises(ValueError, match="line 1 is not a result row"):
        score_folder(folder, tiny_run, broken, progress=False)


def test_cli_prints_the_summary_and_fails_on_listed_errors(folder, tiny_run, tmp_path, capsys):
    out = tmp_path / "results.csv"
    argv = [str(folder), "--run", str(tiny_run), "--out", str(out), "--no-progress"]
    assert cli.main([*argv, "--limit", "3"]) == 1  # broken.jpg, large.png, noise0.jpeg
    assert capsys.readouterr().out.startswith(f"scored 3 images (1 could not be scored) into {out}")
    assert cli.main(argv) == 1  # the error stays listed, and is not retried
    assert "scored 8 images (1 could not be scored)" in capsys.readouterr().out
    assert cli.main([*argv, "--operating-point", "fpr_1pct"]) == 2
    assert "no stored operating points" in capsys.readouterr().err
