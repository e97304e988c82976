"""The classical baselines' Keras models compute what scikit-learn computes, and survive model.keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from feature_models import tiny_extractor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from aiclassify.classical import keras_models
from aiclassify.classical.fit import fit_logistic, fit_platt, fit_svm, scale_gamma, search_grid
from aiclassify.classical.keras_models import (
    RBFKernelDecision,
    features_of,
    fitted_svm_model,
    set_logistic_weights,
)
from aiclassify.config import ClassicalConfig
from aiclassify.models import build_model, load_keras_model

SIZE = 16


@pytest.fixture
def tiny_features(monkeypatch):
    """backbone_svm builds on :func:`tiny_extractor` instead of the configured backbone."""
    monkeypatch.setattr(keras_models, "feature_model", tiny_extractor)


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """96 noise images; the AI-generated half brighter and lower in contrast (the classes overlap)."""
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 2
    pixels = rng.integers(0, 256, (96, SIZE, SIZE, 3)).astype("float32")
    pixels[labels == 1] = np.clip(pixels[labels == 1] * 0.6 + rng.normal(80, 40, (48, 1, 1, 1)), 0, 255)
    return pixels, labels


def test_logistic_pixels_equals_scikit_learn_predict_proba(images, tmp_path):
    pixels, labels = images
    model = build_model("logistic_pixels", SIZE)
    features = features_of(model).predict(pixels, verbose=0).astype(np.float64)
    np.testing.assert_allclose(features, pixels.reshape(len(pixels), -1) / 255.0, rtol=1e-6)
    fit = fit_logistic(features, labels, ClassicalConfig(logistic_c=(0.01, 1.0)), seed=0)
    set_logistic_weights(model, fit.scaler, fit.estimator)
    expected = fit.pipeline.predict_proba(features)[:, 1]
    assert np.ptp(expected) > 0.1  # a fit that tells images apart, not a constant
    output = model.predict(pixels, verbose=0)
    assert output.dtype == np.float32 and output.shape == (len(pixels), 1)
    np.testing.assert_allclose(output.ravel(), expected, atol=1e-5)
    model.save(tmp_path / "model.keras")
    reloaded = load_keras_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(pixels, verbose=0).ravel(), expected, atol=1e-5)


def test_backbone_svm_equals_scikit_learn_decision_function_and_platt(images, tiny_features, tmp_path):
    pixels, labels = images
    model = build_model("backbone_svm", SIZE)
    features = features_of(model).predict(pixels, verbose=0).astype(np.float64)
    train, held_out = slice(0, 64), slice(64, None)
    config = ClassicalConfig(svm_c=(0.5, 5.0), svm_gamma=(0.5, 2.0))
    fit = fit_svm(features[train], labels[train], config, seed=0)
    decision = fit.pipeline.decision_function(features)
    platt = fit_platt(decision[held_out], labels[held_out])
    fitted = fitted_svm_model(model, fit.scaler, fit.estimator, fit.best_params["gamma"], platt)
    decision_model = keras.Model(fitted.inputs, fitted.get_layer("svm_decision").output)
    np.testing.assert_allclose(decision_model.predict(pixels, verbose=0).ravel(), decision, atol=1e-5)
    expected = platt.predict_proba(decision.reshape(-1, 1))[:, 1]
    output = fitted.predict(pixels, verbose=0)
    assert output.dtype == np.float32
    np.testing.assert_allclose(output.ravel(), expected, atol=1e-5)
    assert fitted.get_layer("svm_decision").num_support == len(fit.estimator.support_vectors_) > 1
    fitted.save(tmp_path / "model.keras")
    reloaded = load_keras_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(pixels, verbose=0).ravel(), expected, atol=1e-5)


def test_gamma_is_scikit_learns_scale_times_the_grid_factor(images):
    pixels, labels = images
    features = pixels.reshape(len(pixels), -1)[:, :50].astype(np.float64)
    standardised = StandardScaler().fit_transform(features)
    by_name = SVC(gamma="scale").fit(standardised, labels).decision_function(standardised)
    by_value = SVC(gamma=scale_gamma(features)).fit(standardised, labels).decision_function(standardised)
    np.testing.assert_allclose(by_value, by_name, atol=1e-10)
    fit = fit_svm(features, labels, ClassicalConfig(svm_c=(1.0,), svm_gamma=(2.0,)), seed=0)
    assert fit.search is None
    assert fit.best_params == {"C": 1.0, "gamma": 2.0 * scale_gamma(features), "gamma_scale": 2.0}


def test_unfitted_models_say_one_half(images, tiny_features):
    pixels, _ = images
    for name in ("logistic_pixels", "backbone_svm"):
        output = build_model(name, SIZE).predict(pixels[:4], verbose=0)
        np.testing.assert_array_equal(output, np.full((4, 1), 0.5, dtype=np.float32))


def test_the_grid_search_needs_every_class_in_every_fold(images):
    pixels, labels = images
    features = pixels.reshape(len(pixels), -1)[:7, :10]
    few = np.array([0, 0, 0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"at least cv_folds=3 .* Received: 5 real and 2 AI-generated"):
        search_grid(SVC(), {"C": [1.0, 2.0]}, features, few, folds=3, seed=0)


def test_platt_scaling_needs_both_classes():
    with pytest.raises(ValueError, match=r"both classes .* Received: 3 images of class \[1\]"):
        fit_platt(np.array([0.5, 1.0, 2.0]), np.array([1, 1, 1]))


@pytest.mark.parametrize(
    ("options", "match"),
    [({"num_support": 0, "gamma": 1.0}, "num_support=0"), ({"num_support": 3, "gamma": 0.0}, "gamma=0.0")],
)
def test_the_kernel_layer_rejects_bad_parameters(options, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        RBFKernelDecision(**options)


def test_backbone_svm_on_its_default_resnet18_at_32x32_equals_scikit_learn(tmp_path):
    pytest.importorskip("keras_hub", reason="resnet18 needs keras-hub: pip install 'aiclassify[hub]'")
    rng = np.random.default_rng(1)
    labels = np.arange(48) % 2
    pixels = rng.integers(0, 256, (48, 32, 32, 3)).astype("float32")
    pixels[labels == 1] = np.clip(pixels[labels == 1] * 0.6 + 80, 0, 255)
    model = build_model("backbone_svm", 32)
    assert model.get_layer("features").input.shape[-1] == 512  # ResNet-18's pooled width
    features = features_of(model).predict(pixels, verbose=0).astype(np.float64)
    fit = fit_svm(features[:32], labels[:32], ClassicalConfig(svm_c=(1.0, 10.0), svm_gamma=(1.0,)), seed=0)
    decision = fit.pipeline.decision_function(features)
    platt = fit_platt(decision[32:], labels[32:])
    fitted = fitted_svm_model(model, fit.scaler, fit.estimator, fit.best_params["gamma"], platt)
    expected = platt.predict_proba(decision.reshape(-1, 1))[:, 1]
    np.testing.assert_allclose(fitted.predict(pixels, verbose=0).ravel(), expected, atol=1e-5)
    fitted.save(tmp_path / "model.keras")
    reloaded = load_keras_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(pixels, verbose=0).ravel(), expected, atol=1e-5)
