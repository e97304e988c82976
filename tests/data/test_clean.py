"""Cleaning: drops unreadable files, duplicates and leaks (never from test), crops, splits grids."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from builders import image_writer
from conftest import SHARED_DATA
from PIL import Image

from aiclassify.data.clean import REPORT_NAME, CleanError, clean_dataset
from aiclassify.data.cli import main
from aiclassify.data.layouts import detect_layout, load_splits

write_image = image_writer(5000)


def make_dataset(root: Path) -> Path:
    """train/test x REAL/FAKE with a leak, a within-split duplicate and a corrupt file."""
    for split in ("train", "test"):
        for cls in ("REAL", "FAKE"):
            for index in range(3):
                write_image(root / split / cls / f"{index}.png")
    shutil.copy(root / "test" / "FAKE" / "0.png", root / "train" / "FAKE" / "leaked.png")
    shutil.copy(root / "train" / "REAL" / "1.png", root / "train" / "REAL" / "1-copy.png")
    (root / "train" / "REAL" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return root


def snapshot(root: Path) -> dict[str, str]:
    paths = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != REPORT_NAME}


def test_clean_drops_bad_files_duplicates_and_leaks_from_train(tmp_path):
    source = make_dataset(tmp_path / "source")
    before = snapshot(source)
    report = clean_dataset(source, tmp_path / "clean", workers=2, progress=False)
    assert snapshot(source) == before  # the source is never modified
    dropped = {d["path"]: d["kind"] for d in report["dropped"]}
    assert dropped == {
        "train/FAKE/leaked.png": "leak",
        "train/REAL/1-copy.png": "duplicate",
        "train/REAL/broken.jpg": "unreadable",
    }
    assert "test/FAKE/0.png" in files(tmp_path / "clean")  # the test copy of the leak is kept
    assert files(tmp_path / "clean") == set(before) - set(dropped)
    assert report["summary"]["dropped"] == {"leak": 1, "duplicate": 1, "unreadable": 1}
    assert report["after"]["train"] == {"real": 3, "ai-generated": 3}
    saved = json.loads((tmp_path / "clean" / REPORT_NAME).read_text())
    assert saved["dropped"] == report["dropped"]
    assert detect_layout(tmp_path / "clean") == "cifake"
    splits = load_splits(tmp_path / "clean", 0.0, 0.0, 0)
    assert len(splits.splits["train"]) == 6 and len(splits.splits["test"]) == 6
    assert not (tmp_path / ".clean.partial").exists()


def test_leak_between_train_and_validation_is_dropped_from_train(tmp_path):
    source = tmp_path / "source"
    for split in ("train", "valid", "test"):
        for cls in ("real", "fake"):
            write_image(source / split / cls / "a.png")
    shutil.copy(source / "valid" / "real" / "a.png", source / "train" / "real" / "b.png")
    shutil.copy(source / "test" / "real" / "a.png", source / "valid" / "real" / "b.png")
    report = clean_dataset(source, tmp_path / "clean", progress=False, verify=False)
    assert {d["path"] for d in report["dropped"]} == {"train/real/b.png", "valid/real/b.png"}


def test_duplicates_labelled_both_ways_are_all_dropped(tmp_path):
    source = tmp_path / "Realifake"
    write_image(source / "REAL" / "a.png")
    write_image(source / "FAKE" / "b.png")
    shutil.copy(source / "REAL" / "a.png", source / "FAKE" / "a.png")
    report = clean_dataset(source, tmp_path / "out", progress=False, verify=False)
    kinds = {d["path"]: d["kind"] for d in report["dropped"]}
    assert kinds == {"REAL/a.png": "label-conflict", "FAKE/a.png": "label-conflict"}
    assert files(tmp_path / "out") == {"Realifake/FAKE/b.png"}  # keeps the Realifake folder name
    assert detect_layout(tmp_path / "out") == "realifake"


@pytest.mark.parametrize(("corner", "kept_rows"), [("br", slice(0, 16)), ("tl", slice(4, 20))])
def test_crop_watermark_removes_a_band(tmp_path, corner, kept_rows):
    pixels = np.random.default_rng(1).integers(0, 256, (20, 12, 3), dtype=np.uint8)
    source = tmp_path / "source"
    write_image(source / "real" / "a.png", pixels=pixels)
    write_image(source / "fake" / "b.png")
    report = clean_dataset(source, tmp_path / "out", crop_watermark=4, corner=corner, progress=False)
    with Image.open(tmp_path / "out" / "real" / "a.png") as image:
        assert image.size == (12, 16)
        assert np.array_equal(np.asarray(image), pixels[kept_rows])
    where = "bottom" if corner == "br" else "top"
    assert report["changed"][0]["change"] == f"cropped a 4 px band at the {where}"


def test_crop_larger_than_the_image_drops_it(tmp_path):
    source = tmp_path / "source"
    write_image(source / "real" / "a.png", size=(8, 4))
    write_image(source / "fake" / "b.png", size=(8, 8))
    report = clean_dataset(source, tmp_path / "out", crop_watermark=4, progress=False)
    assert [(d["path"], d["kind"]) for d in report["dropped"]] == [("real/a.png", "too-small")]


def test_split_grid_writes_four_tiles(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (20, 16, 3), dtype=np.uint8)
    source = tmp_path / "source"
    write_image(source / "real" / "grid.png", pixels=pixels)
    write_image(source / "fake" / "small.png", size=(6, 6))
    report = clean_dataset(source, tmp_path / "out", split_grid=True, grid_min_size=10, progress=False)
    out = tmp_path / "out"
    assert files(out) == {
        "real/grid_00.png",
        "real/grid_01.png",
        "real/grid_10.png",
        "real/grid_11.png",
        "fake/small.png",
    }
    with Image.open(out / "real" / "grid_01.png") as tile:
        assert np.array_equal(np.asarray(tile), pixels[:10, 8:])
    assert report["summary"]["written"] == 5 and report["summary"]["changed"] == 1


def test_jpeg_keeps_its_quantisation_tables(tmp_path):
    source = tmp_path / "source"
    for cls in ("real", "fake"):
        path = source / cls / "a.jpg"
        path.parent.mkdir(parents=True)
        pixels = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=60 if cls == "real" else 90)
    clean_dataset(source, tmp_path / "out", crop_watermark=8, progress=False)
    for cls in ("real", "fake"):
        original, cropped = Image.open(source / cls / "a.jpg"), Image.open(tmp_path / "out" / cls / "a.jpg")
        with original, cropped:
            assert cropped.size == (32, 24)
            assert cropped.quantization == original.quantization


def test_output_must_be_new_and_outside_the_source(tmp_path):
    source = make_dataset(tmp_path / "source")
    with pytest.raises(CleanError, match="outside the source"):
        clean_dataset(source, source / "clean", progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(CleanError, match="not empty"):
        clean_dataset(source, tmp_path / "busy", progress=False)
    with pytest.raises(CleanError, match="--corner"):
        clean_dataset(source, tmp_path / "new", corner="middle", progress=False)


def test_cli_clean(tmp_path, capsys):
    source = make_dataset(tmp_path / "source")
    assert main(["clean", str(source), "--out", str(tmp_path / "clean"), "--quiet", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "Dropped 3 files: " in out and "leak 1" in out
    assert main(["clean", str(source), "--out", str(source / "inside"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: The output")
    assert main(["clean", str(tmp_path / "nothing"), "--out", str(tmp_path / "c2"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_clean_real_faces(tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: no real data to test on")
    subprocess.run(["tar", "-xzf", str(SHARED_DATA / "faces.tar.gz"), "-C", str(tmp_path)], check=True)
    report = clean_dataset(tmp_path / "faces", tmp_path / "clean", crop_watermark=16, progress=False)
    assert report["summary"]["dropped_total"] == 0 and report["summary"]["changed"] == 717
    assert detect_layout(tmp_path / "clean") == "faces-140k"
    with Image.open(next((tmp_path / "clean" / "test" / "fake").iterdir())) as image:
        assert image.size == (256, 240)
