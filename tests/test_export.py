"""The exported SavedModel and the predict command, round-tripped against the in-memory model."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from aiclassify import predict, runs
from aiclassify.export import BYTES_SIGNATURE, OUTPUT_KEY, PIXELS_SIGNATURE, export_saved_model
from aiclassify.models import build_model
from aiclassify.predictor import Predictor
from aiclassify.preprocessing import decode_batch


def image_bytes(seed: int, fmt: str, size: tuple[int, int] = (48, 40)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def encoded_images() -> list[bytes]:
    return [image_bytes(i, fmt) for i, fmt in enumerate(("JPEG", "PNG", "WEBP", "BMP", "GIF"))]


def test_reloaded_saved_model_matches_in_memory_model(trained_run, encoded_images):
    model = keras.saving.load_model(trained_run / runs.MODEL_FILE)
    expected = model(tf.cast(decode_batch(tf.constant(encoded_images), 32), tf.float32)).numpy().ravel()
    reloaded = tf.saved_model.load(str(trained_run / runs.SAVED_MODEL_DIR))
    served = reloaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant(encoded_images))[OUTPUT_KEY]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert served.shape == (len(encoded_images),)


def test_pixel_signature_matches_bytes_signature(trained_run, encoded_images):
    reloaded = tf.saved_model.load(str(trained_run / runs.SAVED_MODEL_DIR))
    pixels = tf.cast(decode_batch(tf.constant(encoded_images), 32), tf.float32)
    by_pixels = reloaded.signatures[PIXELS_SIGNATURE](pixels=pixels)[OUTPUT_KEY]
    by_bytes = reloaded.signatures[BYTES_SIGNATURE](image_bytes=tf.constant(encoded_images))[OUTPUT_KEY]
    np.testing.assert_allclose(by_pixels.numpy(), by_bytes.numpy(), rtol=1e-5, atol=1e-6)


def test_export_replaces_previous_export_atomically(tmp_path):
    model = build_model("cnn_small2", 32)
    target = tmp_path / "saved_model"
    export_saved_model(model, target, 32)
    first = (target / "saved_model.pb").stat().st_mtime_ns
    export_saved_model(model, target, 32)
    assert (target / "saved_model.pb").stat().st_mtime_ns != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


def test_predictor_and_cli(trained_run, encoded_images, tmp_path, capsys):
    paths = []
    for index, data in enumerate(encoded_images[:2]):
        paths.append(tmp_path / f"image{index}.img")
        paths[-1].write_bytes(data)
    broken = tmp_path / "broken.jpg"
    broken.write_text("hello")
    predictor = Predictor.load(trained_run)
    results = predictor.predict_files([*paths, broken])
    probabilities = predictor.probabilities(encoded_images[:2])
    assert [r.probability_ai for r in results[:2]] == pytest.approx(probabilities)
    assert results[0].label == ("ai-generated" if probabilities[0] >= 0.5 else "real")
    assert results[2].error == "not an image"

    exit_code = predict.main(["--run", str(trained_run), str(paths[0]), str(broken)])
    output = capsys.readouterr().out.splitlines()
    assert exit_code == 1
    assert output[0].startswith(f"{paths[0]}: ") and "P(AI-generated)" in output[0]
    assert output[1] == f"{broken}: error: not an image"


def test_predict_cli_on_a_folder_that_is_no_run(tmp_path, capsys):
    assert predict.main(["--run", str(tmp_path), "x.jpg"]) == 2
    assert "not a finished run" in capsys.readouterr().err


def test_predict_cli_reports_calibrated_probability_with_unchanged_label(trained_run, tmp_path):
    import json
    import shutil

    calibrated_run = tmp_path / "calibrated"
    shutil.copytree(trained_run, calibrated_run)
    runs.write_json(calibrated_run / runs.CALIBRATION_FILE, {"temperature": 3.0, "operating_points": []})
    path = tmp_path / "image.png"
    path.write_bytes(image_bytes(7, "PNG"))
    raw = Predictor.load(trained_run).predict_files([path])[0]
    scaled = Predictor.load(calibrated_run).predict_files([path])[0]
    assert scaled.label == raw.label
    assert abs(scaled.probability_ai - 0.5) < abs(raw.probability_ai - 0.5)
    assert json.loads(json.dumps(scaled.__dict__))["probability_ai"] == scaled.probability_ai
