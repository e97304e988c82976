"""The face detection benchmark (scripts/bench_faces.py): its options, and a tiny run on demo data."""

from __future__ import annotations

import json

import pytest
from conftest import load_script

script = load_script("bench_faces")


def test_options():
    args = script.parse_args(["--sizes", "64,128", "--box-scales", "1.4", "--limit", "3"])
    assert args.sizes == [64, 128] and args.box_scales == [1.4] and args.limit == 3
    with pytest.raises(SystemExit):
        script.parse_args(["--repeats", "0"])


def test_a_tiny_run_on_demo_data_prints_and_writes_every_table(tmp_path, demo_data, capsys):
    out = tmp_path / "faces.json"
    argv = [
        "--data",
        str(demo_data),
        "--sizes",
        "64,128",
        "--repeats",
        "1",
        "--limit",
        "2",
        "--out",
        str(out),
    ]
    assert script.main(argv) == 0
    results = json.loads(out.read_text())
    assert [row["longer_side"] for row in results["latency"]] == [64, 128]
    assert all(row["median_ms"] > 0 for row in results["latency"])
    # Demo images hold no faces: no rates of one face, and no crops to compare.
    assert [(row["class"], row["count"], row["exactly_one"]) for row in results["rates"]] == [
        ("real", 2, 0),
        ("fake", 2, 0),
    ]
    assert {row["method"] for row in results["crops"]} == {
        "frame",
        "aligned",
        "box x1.2",
        "box x1.4",
        "box x1.6",
    }
    printed = capsys.readouterr().out
    assert "median_ms" in printed and "exactly_one" in printed and "mean_abs_diff" in printed
