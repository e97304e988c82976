"""Grad-CAM (``aiclassify.explain``): heatmap shape and range, the CLI, and where the heat goes."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
from builders import encode, noise_image
from PIL import Image

from aiclassify.explain import (
    capped_size,
    grad_cam,
    grad_cam_and_probability,
    last_conv_layer,
    main,
    overlay_png,
)
from aiclassify.models import build_model, standalone_model_names


@pytest.mark.parametrize("name", standalone_model_names())
def test_heatmap_has_the_image_size_and_unit_range(name):
    model = build_model(name, 32)
    if not any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers):  # e.g. vit_b16
        with pytest.raises(ValueError, match=f"model '{name}' has no Conv2D layer to explain"):
            grad_cam(model, noise_image(size=(48, 40)), 32)
        return
    heatmap = grad_cam(model, noise_image(size=(48, 40)), 32)
    assert heatmap.shape == (40, 48)
    assert heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() <= 1.0


def test_layer_choice_and_errors():
    model = build_model("cnn_small3", 32)
    assert last_conv_layer(model) == "block3_conv1"
    _, probability, layer = grad_cam_and_probability(model, noise_image(size=(48, 40)), 32, "block1_conv1")
    assert layer == "block1_conv1" and 0.0 <= probability <= 1.0
    with pytest.raises(ValueError):
        grad_cam(model, noise_image(size=(48, 40)), 32, "no_such_layer")


def test_probability_matches_the_model():
    import tensorflow as tf

    from aiclassify.preprocessing import decode_and_resize

    model = build_model("cnn_small2", 32)
    data = noise_image(size=(48, 40))
    _, probability, _ = grad_cam_and_probability(model, data, 32)
    pixels = tf.cast(decode_and_resize(tf.constant(data), 32), tf.float32)[None]
    assert probability == pytest.approx(float(model(pixels, training=False)[0, 0]), abs=1e-5)


def test_overlay_is_a_png_of_the_image_size():
    heatmap = np.linspace(0, 1, 40 * 48, dtype=np.float32).reshape(40, 48)
    overlay = Image.open(io.BytesIO(overlay_png(noise_image(size=(48, 40)), heatmap)))
    assert overlay.format == "PNG" and overlay.size == (48, 40)
    with pytest.raises(ValueError, match="does not match"):
        overlay_png(noise_image(size=(48, 40)), heatmap.T)


def test_capped_size_keeps_the_aspect_and_never_enlarges():
    assert capped_size(6000, 4000, 1024) == (1024, 683)
    assert capped_size(30, 64, 32) == (15, 32)
    assert capped_size(5000, 3, 1000) == (1000, 1)  # never a side of 0
    assert capped_size(48, 40, 1024) == (48, 40) == capped_size(48, 40, None)


def test_heatmap_and_overlay_at_a_capped_size():
    model = build_model("cnn_small2", 32)
    image = noise_image("JPEG", size=(300, 200))
    heatmap = grad_cam(model, image, 32, max_side=64)
    assert heatmap.shape == (43, 64) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    overlay = Image.open(io.BytesIO(overlay_png(image, heatmap)))  # the JPEG decoded at 1/4 scale
    assert overlay.format == "PNG" and overlay.size == (64, 43)
    png = noise_image("PNG", size=(300, 200))
    assert Image.open(io.BytesIO(overlay_png(png, heatmap))).size == (64, 43)
    with pytest.raises(ValueError, match="does not match"):
        overlay_png(noise_image(size=(200, 200)), heatmap)  # not the same aspect


def test_cli_writes_an_overlay(tiny_run, tmp_path, capsys):
    image = tmp_path / "odd.png"
    image.write_bytes(noise_image(size=(48, 40)))
    out = tmp_path / "overlay.png"
    assert main(["--run", str(tiny_run), str(image), "--out", str(out)]) == 0
    assert Image.open(out).size == (48, 40)
    printed = capsys.readouterr().out
    assert "P(AI-generated) = " in printed and str(out) in printed
    assert main(["--run", str(tiny_run), str(image)]) == 0
    assert (tmp_path / "odd.gradcam.png").is_file()
    assert main(["--run", str(tiny_run), str(image), "--out", str(out), "--max-side", "24"]) == 0
    assert Image.open(out).size == (24, 20)
    assert main(["--run", str(tmp_path), str(image)]) == 2


def test_cli_is_a_subcommand():
    from aiclassify.cli import COMMANDS

    assert COMMANDS["explain"][0] == "aiclassify.explain"


# --- the heat lies where the generator's artefacts are ------------------------------------------

SIZE = 32


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """cnn_small3 trained on 150 + 150 demo images at 32x32 for 8 epochs (about ten seconds)."""
    import json

    import keras

    from aiclassify.config import load_config
    from aiclassify.train import train

    root = tmp_path_factory.mktemp("explain")
    config = load_config(
        None,
        [
            "data.source=demo",
            f"data.path={root}/demo",
            "data.demo_images_per_class=150",
            f"data.demo_image_size={SIZE}",
            f"data.image_size={SIZE}",
            "model.name=cnn_small3",
            "train.epochs=8",
            "train.batch_size=32",
            "train.verbose=0",
        ],
    )
    train(config, root / "run")
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, "the model did not learn the demo data"
    return keras.models.load_model(root / "run" / "model.keras", compile=False)


def composite(rng: np.random.Generator, side: int) -> tuple[bytes, np.ndarray]:
    """A real demo render with one half (left, right, top, bottom) replaced by a fake render."""
    from aiclassify.data.demo import render

    def decoded(label: int) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(render(label, SIZE, rng))).convert("RGB"))

    fake, pixels = decoded(1), decoded(0).copy()
    mask = np.zeros((SIZE, SIZE), bool)
    half = SIZE // 2
    [mask[:, :half], mask[:, half:], mask[:half], mask[half:]][side][...] = True
    pixels[mask] = fake[mask]
    return encode(Image.fromarray(pixels)), mask


def test_heat_concentrates_on_the_fake_half(demo_model):
    rng = np.random.default_rng(123)
    inside, outside = [], []
    for index in range(12):
        data, mask = composite(rng, index % 4)
        heatmap = grad_cam(demo_model, data, SIZE)
        inside.append(heatmap[mask].mean())
        outside.append(heatmap[~mask].mean())
    hotter = int(np.sum(np.array(inside) > np.array(outside)))
    print(
        f"mean heat: fake half {np.mean(inside):.4f}, real half {np.mean(outside):.4f}; "
        f"fake half hotter in {hotter}/12"
    )
    assert np.mean(inside) > 1.5 * np.mean(outside)
    assert hotter >= 7
