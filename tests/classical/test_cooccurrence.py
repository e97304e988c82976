"""``cooccurrence_logistic``: its Keras features equal a numpy reference, and it fits and runs like
the other classical baselines."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_overrides

from aiclassify import runs
from aiclassify.classical import CLASSICAL_MODELS
from aiclassify.classical.cooccurrence import CHANNELS, CooccurrenceFeatures
from aiclassify.classical.fit import fit_logistic
from aiclassify.classical.keras_models import features_of, set_logistic_weights
from aiclassify.config import ClassicalConfig, load_config
from aiclassify.models import build_model, load_keras_model
from aiclassify.predict import Predictor

SIZE = 20
GROUPS = len(CHANNELS) * 2  # a horizontal and a vertical residual per channel
LEVELS = 5  # 2T + 1 with T = 2


def reference_features(images: np.ndarray, threshold: int = 2, saturation_bins: int = 16) -> np.ndarray:
    """The features as written down, in float64 numpy, one image at a time."""
    levels = 2 * threshold + 1
    rows = []
    for image in images.astype(np.float64):
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        high, low = image.max(-1), image.min(-1)
        saturation = np.where(high > 0, 255.0 * (high - low) / np.where(high > 0, high, 1.0), 0.0)
        channels = [
            r,
            g,
            b,
            128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
            128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
            saturation,
        ]
        row = []
        for c in channels:
            for residual in (c[:, :-2] - 2 * c[:, 1:-1] + c[:, 2:], c[:-2] - 2 * c[1:-1] + c[2:]):
                q = np.clip(np.round(residual), -threshold, threshold).astype(int) + threshold
                pairs = np.concatenate(
                    [(q[:, :-1] * levels + q[:, 1:]).ravel(), (q[:-1] * levels + q[1:]).ravel()]
                )
                counts = np.bincount(pairs, minlength=levels * levels)
                row.append(counts / counts.sum())
        if saturation_bins:
            hist, _ = np.histogram(saturation, bins=saturation_bins, range=(0, 256))
            row.append(hist / hist.sum())
        rows.append(np.concatenate(row))
    return np.stack(rows)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Random 0-255 images: uniform noise, smooth ramps (small residuals) and a black one."""
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (4, SIZE, SIZE, 3)).astype("float32")
    ramp = np.linspace(0, 200, SIZE)[None, :, None, None] + np.linspace(0, 40, SIZE)[None, None, :, None]
    smooth = np.clip(
        ramp * rng.uniform(0.5, 1.2, (4, 1, 1, 3)) + rng.normal(0, 1.5, (4, SIZE, SIZE, 3)), 0, 255
    )
    return np.concatenate(
        [noise, np.round(smooth).astype("float32"), np.zeros((1, SIZE, SIZE, 3), "float32")]
    )


def test_the_features_equal_the_numpy_reference(images):
    model = build_model("cooccurrence_logistic", SIZE)
    features = features_of(model).predict(images, verbose=0)
    expected = reference_features(images)
    assert features.shape == expected.shape == (len(images), GROUPS * LEVELS**2 + 16) == (9, 316)
    rgb = 3 * 2 * LEVELS**2  # integer residuals: no rounding ties to break differently
    np.testing.assert_array_equal(features[:, :rgb], expected[:, :rgb])
    pairs = 2 * SIZE * SIZE - 5 * SIZE + 2  # adjacent pairs per residual of a square image
    np.testing.assert_allclose(features, expected, rtol=0, atol=1.5 / pairs)
    assert np.mean(features == expected) > 0.99


def test_each_histogram_sums_to_one_and_the_options_set_the_width(images):
    features = np.asarray(CooccurrenceFeatures(dtype="float64")(images))
    groups = features[:, : GROUPS * LEVELS**2].reshape(len(images), GROUPS, LEVELS**2)
    np.testing.assert_allclose(groups.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(features[:, GROUPS * LEVELS**2 :].sum(-1), 1.0, atol=1e-12)
    layer = CooccurrenceFeatures(threshold=1, channels=("g", "cr"), saturation_bins=0, dtype="float64")
    narrow = np.asarray(layer(images))
    assert narrow.shape == (len(images), 2 * 2 * 9) == layer.compute_output_shape(images.shape)
    expected = reference_features(images, threshold=1, saturation_bins=0).reshape(len(images), GROUPS, 9)
    pairs = 2 * SIZE * SIZE - 5 * SIZE + 2
    g_and_cr = expected[:, [2, 3, 8, 9]]  # each channel's horizontal then vertical residual
    np.testing.assert_allclose(narrow.reshape(len(images), 4, 9), g_and_cr, rtol=0, atol=1.5 / pairs)


def test_the_fitted_model_equals_scikit_learn_and_survives_model_keras(images, tmp_path):
    rng = np.random.default_rng(0)
    pixels = np.concatenate([images, rng.integers(0, 256, (11, SIZE, SIZE, 3)).astype("float32")])
    labels = np.arange(len(pixels)) % 2
    model = build_model("cooccurrence_logistic", SIZE)
    assert model.name == "cooccurrence_logistic" and "cooccurrence_logistic" in CLASSICAL_MODELS
    features = features_of(model).predict(pixels, verbose=0).astype(np.float64)
    fit = fit_logistic(features, labels, ClassicalConfig(logistic_c=(1.0,)), seed=0)
    set_logistic_weights(model, fit.scaler, fit.estimator)
    output = model.predict(pixels, verbose=0)
    assert output.dtype == np.float32 and output.shape == (len(pixels), 1)
    np.testing.assert_allclose(output.ravel(), fit.pipeline.predict_proba(features)[:, 1], atol=1e-5)
    assert np.ptp(output) > 0.1
    model.save(tmp_path / "model.keras")
    reloaded = load_keras_model(tmp_path / "model.keras")
    assert reloaded.get_layer("features").get_config() == model.get_layer("features").get_config()
    np.testing.assert_array_equal(reloaded.predict(pixels, verbose=0), output)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"threshold": 0}, "Received: threshold=0"),
        ({"threshold": 1.5}, "Received: threshold=1.5"),
        ({"channels": ("r", "hue")}, r"Received: channels=\['r', 'hue'\]"),
        ({"channels": ("r", "r")}, r"Received: channels=\['r', 'r'\]"),
        ({"channels": ()}, r"Received: channels=\[\]"),
        ({"saturation_bins": -1}, "Received: saturation_bins=-1"),
    ],
)
def test_bad_arguments_are_a_value_error(arguments, match):
    with pytest.raises(ValueError, match=match):
        CooccurrenceFeatures(**arguments)


def test_too_small_or_non_rgb_inputs_are_a_value_error():
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 3, 3, 3\)"):
        build_model("cooccurrence_logistic", 3)
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 8, 8, 1\)"):
        build_model("cooccurrence_logistic", 8, channels=1)


def test_a_tiny_fit_through_the_classical_run_writes_a_run_directory(tmp_path, demo_data):
    from aiclassify.train import train

    overrides = [
        *tiny_overrides(demo_data, **{"model.name": "cooccurrence_logistic"}),
        "classical.logistic_c=[0.1, 1.0]",
        "classical.cv_folds=2",
    ]
    run = tmp_path / "run"
    metrics = train(load_config(None, overrides), run)
    for name in (runs.CONFIG_FILE, runs.MODEL_FILE, runs.METRICS_FILE, runs.METADATA_FILE):
        assert (run / name).is_file(), name
    assert (run / runs.SAVED_MODEL_DIR / "saved_model.pb").is_file()
    classical = runs.read_metadata(run)["classical"]
    assert classical["features"].endswith("(316)") and classical["best_params"]["C"] in (0.1, 1.0)
    assert len(classical["grid_search"]["candidates"]) == 2
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["epochs_completed"] is None
    predictor = Predictor.load(run)  # the SavedModel serves what model.keras computes
    images = [path.read_bytes() for path in sorted(demo_data.rglob("*.jpg"))[:6]]
    served = predictor.probabilities(images)
    np.testing.assert_allclose(
        served, predictor.with_model(predictor.keras_model()).probabilities(images), atol=1e-5
    )
    assert np.ptp(served) > 0


def test_the_shipped_config_fits_it_on_the_faces():
    config = load_config("faces-cooccurrence")
    assert config.model.name == "cooccurrence_logistic" and config.data.dataset == "faces"
    assert config.data.image_size == 256 and len(config.classical.logistic_c) > 1
    assert not config.train.augment and not any(config.train.degrade.probabilities.values())
