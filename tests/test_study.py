"""``aiclassify.study``: the filter and augmentation study tables."""

from __future__ import annotations

import json

import pytest

from aiclassify.study import AUGMENT_SETS, FILTERS, cross_matrix, results_table, variant_overrides


def test_variants_name_real_filters_and_augmentations():
    from aiclassify.data.augment import AUGMENT_NAMES
    from aiclassify.filters import FILTER_NAMES

    assert FILTERS == FILTER_NAMES
    assert {name for names in AUGMENT_SETS.values() for name in names} == set(AUGMENT_NAMES)
    from aiclassify.cli import COMMANDS

    assert COMMANDS["study"][0] == "aiclassify.study"
    assert variant_overrides("filters", "srm") == ["data.filter=srm"]
    assert variant_overrides("augment", "jpeg_downscale") == ["train.augment=[jpeg, downscale]"]
    assert variant_overrides("augment", "none") == ["train.augment=[]"]
    with pytest.raises(ValueError, match=r"Valid variants: .*Received: variant='srm'"):
        variant_overrides("augment", "srm")


def section(trained: str, cells: dict) -> dict:
    rows = [{"filter": name, "accuracy": acc, "roc_auc": acc} for name, acc in cells.items()]
    return {"cross_filter": {"trained_filter": trained, "rows": rows}}


def test_cross_matrix_has_one_row_per_training_filter_and_n_a_cells():
    reports = {
        "none": section("none", {"none": 0.9, "gray_world": 0.5, "srm": None}),
        "srm": section("srm", {"none": 0.55, "gray_world": 0.6, "srm": 0.85}),
    }
    assert cross_matrix(reports) == [
        "| trained \\ tested | none | gray_world | srm |",
        "|---|---|---|---|",
        "| none | 0.9000 | 0.5000 | n/a |",
        "| srm | 0.5500 | 0.6000 | 0.8500 |",
    ]


def test_results_table_keeps_only_measured_columns():
    rows = [
        {"variant": "none", "accuracy": 0.875, "roc_auc": 0.95, "acc_jpeg_q50": 0.8, "train_seconds": 35.4},
        {"variant": "all", "accuracy": 0.8, "roc_auc": None, "acc_jpeg_q50": 0.79, "train_seconds": 40.0},
    ]
    assert results_table(rows, "augment") == [
        "| augment | test accuracy | ROC-AUC | JPEG q50 | training s |",
        "|---|---|---|---|---|",
        "| none | 0.8750 | 0.9500 | 0.8000 | 35 |",
        "| all | 0.8000 | n/a | 0.7900 | 40 |",
    ]


def test_filter_study_trains_each_variant_and_reads_the_matrix_from_the_reports(tmp_path, capsys):
    from aiclassify.data.demo import write_demo_dataset
    from aiclassify.study import main

    data = write_demo_dataset(tmp_path / "demo", images_per_class=20, image_size=32)
    out = tmp_path / "study"
    argv = ["filters", "--data", str(data), "--out", str(out), "--config", "demo", "--model", "cnn_small2"]
    argv += ["--epochs", "1", "--subset", "train=16", "--variants", "none,gray_world", "--tiers", "jpeg_q50"]
    argv += ["--set", "data.source=folder", "--set", "train.batch_size=8", "--set", "train.verbose=0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| none |" in printed and "Cross-filter test accuracy:" in printed
    study = json.loads((out / "study.json").read_text())
    assert [row["variant"] for row in study["rows"]] == ["none", "gray_world"]
    for row in study["rows"]:
        report = json.loads((out / row["variant"] / "cnn_small2" / "report.json").read_text())
        assert report["cross_filter"]["trained_filter"] == row["variant"]
        assert row["accuracy"] == report["test"]["accuracy"]
        cells = {r["filter"]: r["accuracy"] for r in report["cross_filter"]["rows"]}
        assert study["cross_filter"]["accuracy"][row["variant"]] == cells
        assert list(cells) == list(FILTERS)
    assert (out / "study.md").read_text() == study["markdown"]
