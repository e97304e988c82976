"""Cross-filter testing: a trained model with its input filter replaced, and the report section."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from aiclassify.filters import FILTER_NAMES, GrayWorld
from aiclassify.models import build_model, replace_filter


def colour_images(seed: int = 0, shape=(4, 32, 32, 3)) -> np.ndarray:
    """Random images with a strong colour cast, so that Gray World changes them a lot."""
    pixels = np.random.default_rng(seed).integers(0, 256, shape).astype("float32")
    return pixels * np.array([1.0, 0.6, 0.2], "float32")


def trained_weights_model(filter_name: str = "none", channels: int = 3) -> keras.Model:
    """A cnn_small2 with non-default weights (random, seeded), as if trained."""
    keras.utils.set_random_seed(1)
    return build_model("cnn_small2", 32, channels=channels, filter_name=filter_name, filter_sigma=1.5)


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_replacing_a_filter_by_itself_changes_nothing(name):
    model = trained_weights_model(name)
    swapped = replace_filter(model, name, filter_sigma=1.5)
    images = colour_images()
    np.testing.assert_array_equal(swapped(images).numpy(), model(images).numpy())
    assert [layer.name for layer in swapped.layers] == [layer.name for layer in model.layers]


def test_gray_world_inserted_equals_filtering_the_input_first():
    model = trained_weights_model("none")
    swapped = replace_filter(model, "gray_world")
    images = colour_images(1)
    expected = model(GrayWorld()(images)).numpy()
    np.testing.assert_allclose(swapped(images).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.abs(expected - model(images).numpy()).max() > 1e-3  # the filter does matter here
    assert [layer.name for layer in swapped.layers[:3]] == ["image", "filter", "rescale"]


def test_trained_layers_are_shared_not_copied():
    model = trained_weights_model("median_blur")
    swapped = replace_filter(model, "none")
    assert "filter" not in [layer.name for layer in swapped.layers]
    assert swapped.get_layer("fc1") is model.get_layer("fc1")
    images = colour_images(2)
    unfiltered = keras.Model(model.get_layer("rescale").input, model.output)(images)
    np.testing.assert_allclose(swapped(images).numpy(), unfiltered.numpy(), rtol=1e-5, atol=1e-6)


def test_a_filter_with_another_channel_count_is_refused():
    model = trained_weights_model("none", channels=1)  # SRM gives 3 channels, the layers expect 1
    with pytest.raises(ValueError, match=r"gives 3 channels .* expect 1\. Received: filter='srm'"):
        replace_filter(model, "srm")
    with pytest.raises(ValueError, match=r"Received: filter='sobel'"):
        replace_filter(model, "sobel")


def test_parse_filters():
    from aiclassify.evaluate.cross_filter import parse_filters

    assert parse_filters("all") == list(FILTER_NAMES)
    assert parse_filters(" srm,none,srm ") == ["srm", "none"]
    for bad in ("", "none,sobel"):
        with pytest.raises(ValueError, match="Received: filter="):
            parse_filters(bad)


def test_channel_mismatch_is_reported_as_n_a(tmp_path):
    from aiclassify.evaluate.cross_filter import cross_filter_section
    from aiclassify.evaluate.markdown import _cross_filter
    from aiclassify.predict import Predictor

    trained_weights_model("none", channels=1).save(tmp_path / "model.keras")
    (tmp_path / "metadata.json").write_text(json.dumps({"image_size": 32, "threshold": 0.5}))
    (tmp_path / "config.yaml").write_text("{}\n")
    predictor = Predictor(lambda images: [], {"image_size": 32, "threshold": 0.5}, run_dir=tmp_path)
    section = cross_filter_section(predictor, [], ["srm"], threshold=0.5)
    assert section["trained_filter"] == "none"
    (row,) = section["rows"]
    assert row["accuracy"] is None and row["roc_auc"] is None and "filter='srm'" in row["error"]
    assert "| `srm` | n/a | n/a | 0 |" in _cross_filter(section)


def test_evaluate_command_writes_the_cross_filter_section(tiny_run, tmp_path, capsys):
    from aiclassify.evaluate.cli import main

    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    argv = ["--run", str(run_dir), "--tiers", "none", "--no-figures", "--no-metadata"]
    assert main([*argv, "--cross-filters", "none,gray_world,gaussian_blur,srm"]) == 0
    assert "cross-filter accuracy (trained with none): none " in capsys.readouterr().out
    report = json.loads((run_dir / "report.json").read_text())
    section = report["cross_filter"]
    assert section["trained_filter"] == "none"
    rows = {row["filter"]: row for row in section["rows"]}
    assert list(rows) == ["none", "gray_world", "gaussian_blur", "srm"]
    test = report["test"]
    assert all(row["examples"] == report["data"]["test_examples"] for row in rows.values())
    # The run's own filter scores the same images as the report's clean test set (model.keras
    # behind decode_batch instead of the SavedModel: at most one image may flip at the threshold).
    assert abs(rows["none"]["accuracy"] - test["accuracy"]) <= 1.0 / report["data"]["test_examples"]
    assert rows["none"]["roc_auc"] == pytest.approx(test["roc_auc"], abs=0.01)
    markdown = (run_dir / "report.md").read_text()
    assert "## Cross-filter test" in markdown and "| `gray_world` |" in markdown

    assert main([*argv, "--cross-filters", "none,sobel"]) == 2
    assert "Received: filter='none,sobel'" in capsys.readouterr().err
