"""``aiclassify.compare`` on the tiny demo data with two small models."""

from __future__ import annotations

import csv
import json

import pytest

from aiclassify.compare import make_subset, parse_subset


def test_make_subset_samples_per_class_and_keeps_the_layout(tmp_path):
    from aiclassify.data.demo import write_demo_dataset
    from aiclassify.data.layouts import load_splits

    data = write_demo_dataset(tmp_path / "demo", images_per_class=12, image_size=16, seed=0)
    subset = make_subset(data, tmp_path / "subset", {"train": 5}, seed=3)
    counts = load_splits(subset, 0.0, 0.0, 0).counts()["train"]
    assert counts == {"real": 5, "ai-generated": 5}
    assert make_subset(data, tmp_path / "subset", {"train": 5}, seed=3) == subset  # reused


def test_parse_subset_rejects_bad_values():
    assert parse_subset(["train=10", "test=4"]) == {"train": 10, "test": 4}
    for bad in ("train", "train=0", "other=3", "test=x"):
        with pytest.raises(ValueError):
            parse_subset([bad])


def test_compare_writes_one_table_from_the_reports(tmp_path, capsys):
    from aiclassify.compare import main

    out = tmp_path / "compare"
    overrides = [
        f"data.path={tmp_path / 'demo'}",
        "data.demo_images_per_class=30",
        "model.bn_momentum=0.9",
        "train.epochs=1",
        "train.batch_size=16",
        "train.verbose=0",
    ]
    argv = [
        "--config",
        "demo",
        "--models",
        "cnn_small2,lenet5",
        "--out",
        str(out),
        "--tiers",
        "jpeg_q50",
        "--no-figures",
    ]
    assert main([*argv, *(item for o in overrides for item in ("--set", o))]) == 0
    assert "| cnn_small2 |" in capsys.readouterr().out
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["cnn_small2", "lenet5"]
    with (out / "comparison.csv").open() as handle:
        assert [row["model"] for row in csv.DictReader(handle)] == ["cnn_small2", "lenet5"]
    markdown = (out / "comparison.md").read_text()
    for row in rows:
        report = json.loads((out / row["model"] / "report.json").read_text())
        assert row["accuracy"] == report["test"]["accuracy"]
        assert row["roc_auc"] == report["test"]["roc_auc"]
        assert row["parameters"] == report["parameters"]
        assert row["acc_jpeg_q50"] == report["robustness"][1]["accuracy"]
        assert f"| {row['model']} | {row['parameters']} |" in markdown
    first, second = (json.loads((out / m / "metadata.json").read_text()) for m in ("cnn_small2", "lenet5"))
    assert first["dataset"]["counts"] == second["dataset"]["counts"]  # the same splits
