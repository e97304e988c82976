"""Dataset inspection: counts, sizes, formats, unreadable files and planted duplicates and leaks."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from builders import image_writer
from PIL import Image

from aiclassify.data.cli import main
from aiclassify.data.inspection import format_summary, scan_dataset, summarize, write_inspection

write_image = image_writer(1000)


def make_dataset(root: Path) -> Path:
    """train/test x real/fake with a leak, a within-split duplicate, two bad files, mixed sizes and modes."""
    for split, count in (("train", 4), ("test", 2)):
        for cls in ("real", "fake"):
            for index in range(count):
                write_image(root / split / cls / f"{index}.png")
    write_image(root / "train" / "real" / "big.jpg", size=(24, 16))
    write_image(root / "train" / "fake" / "grey.png", mode="L")
    write_image(root / "test" / "fake" / "alpha.png", mode="RGBA")
    shutil.copy(root / "test" / "fake" / "0.png", root / "train" / "fake" / "leaked.png")  # leak
    shutil.copy(root / "train" / "real" / "0.png", root / "train" / "real" / "copy.png")  # within train
    (root / "train" / "fake" / "notes.jpg").write_text("not an image")
    truncated = write_image(root / "test" / "real" / "truncated.jpg", size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:-1500])  # header intact, scan data cut short
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "data")


def test_counts_sizes_formats_and_modes(dataset):
    report = summarize(scan_dataset(dataset, workers=2, progress=False))
    assert report["layout"] == "folders"
    assert report["images"] == 19
    assert report["splits"]["train"] == {"real": 6, "ai-generated": 7, "total": 13, "ai_share": 0.5385}
    assert report["splits"]["test"]["total"] == 6
    assert report["formats"] == {"PNG": 16, "JPEG": 2, "unknown": 1}
    assert report["modes"]["L"] == 1 and report["modes"]["RGBA"] == 1
    assert report["sizes"]["most_common"][0] == ["8x8", 16]
    assert report["sizes"]["width"] == {"min": 8, "median": 8, "max": 64}


def test_unreadable_files_are_listed_with_reasons(dataset):
    report = summarize(scan_dataset(dataset, workers=2, progress=False))
    reasons = {u["path"]: u["reason"] for u in report["unreadable"]}
    assert set(reasons) == {"train/fake/notes.jpg", "test/real/truncated.jpg"}
    assert reasons["train/fake/notes.jpg"] == "not an image"
    assert "unreadable image" in reasons["test/real/truncated.jpg"]


def test_planted_duplicates_and_leaks_are_found(dataset):
    duplicates = summarize(scan_dataset(dataset, workers=2, progress=False))["duplicates"]
    assert duplicates["within_split_groups"] == 1 and duplicates["within_split_extra_copies"] == 1
    assert duplicates["within_split"][0]["paths"] == ["train/real/0.png", "train/real/copy.png"]
    assert duplicates["cross_split_groups"] == 1
    leak = {"train": ["train/fake/leaked.png"], "test": ["test/fake/0.png"]}
    assert duplicates["cross_split"][0]["paths"] == leak
    assert duplicates["label_conflicts"] == 0


def test_same_image_in_both_classes_is_a_label_conflict(tmp_path):
    root = tmp_path / "data"
    write_image(root / "real" / "a.png")
    write_image(root / "fake" / "b.png")
    shutil.copy(root / "real" / "a.png", root / "fake" / "a-again.png")
    report = summarize(scan_dataset(root, workers=1, progress=False, verify=False))
    assert report["splits"]["all"]["total"] == 3
    assert report["duplicates"]["label_conflicts"] == 1
    assert "labelled both real and AI-generated: 1" in format_summary(report)


def test_report_and_figures_are_written(dataset, tmp_path):
    scan = scan_dataset(dataset, workers=2, progress=False)
    report = summarize(scan)
    written = write_inspection(scan, report, tmp_path / "out", samples_per_class=3)
    assert [p.name for p in written] == ["report.json", "class_balance.png", "image_sizes.png", "samples.png"]
    assert json.loads(written[0].read_text())["duplicates"]["cross_split_groups"] == 1
    for figure in written[1:]:
        with Image.open(figure) as image:
            assert image.format == "PNG" and image.width > 200


def test_cli_inspect_prints_summary_and_writes_files(dataset, tmp_path, capsys):
    assert main(["inspect", str(dataset), "--out", str(tmp_path / "out"), "--quiet", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "Exact duplicates across splits (leaks): 1 groups" in out
    assert "train/fake/leaked.png" in out and "Unreadable files: 2" in out
    assert (tmp_path / "out" / "samples.png").is_file()


def test_cli_inspect_unknown_layout_exits_2(tmp_path, capsys):
    write_image(tmp_path / "pets" / "cats" / "a.png")
    assert main(["inspect", str(tmp_path / "pets"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No dataset found") and "Known layouts" in err and "Traceback" not in err


@pytest.mark.slow
def test_real_faces_inspection(shared_data, tmp_path):
    scan = scan_dataset(shared_data / "faces", progress=False)
    report = summarize(scan)
    assert report["layout"] == "faces-140k" and report["images"] == 717
    assert report["splits"]["validation"] == {"real": 51, "ai-generated": 51, "total": 102, "ai_share": 0.5}
    assert report["sizes"]["most_common"] == [["256x256", 717]] and not report["unreadable"]
    write_inspection(scan, report, tmp_path / "faces-report")


@pytest.mark.slow
def test_real_cifake_inspection_in_minutes(shared_data):
    started = time.monotonic()
    report = summarize(scan_dataset(shared_data / "cifake", progress=False))
    elapsed = time.monotonic() - started
    print(format_summary(report))
    assert report["layout"] == "cifake" and report["images"] == 108713
    assert report["splits"]["train"]["real"] == 50000 and report["splits"]["test"]["ai-generated"] == 4998
    assert report["formats"] == {"JPEG": 108713} and report["sizes"]["most_common"] == [["32x32", 108713]]
    assert report["duplicates"]["cross_split_groups"] == 0  # the shared copy was de-duplicated
    assert elapsed < 600
