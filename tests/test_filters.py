"""Forensic input filters: what each computes, and that it is the same everywhere it runs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from aiclassify.filters import FILTER_NAMES, SRM_KERNELS, GaussianBlur, MedianBlur, make_filter
from aiclassify.models import build_model

FILTERS = [name for name in FILTER_NAMES if name != "none"]


def noise_images(seed: int = 0, shape=(2, 16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype("float32")


def test_gray_world_equalises_channel_means():
    image = noise_images() * np.array([1.0, 0.5, 0.2], "float32")  # a reddish image
    output = make_filter("gray_world")(image).numpy()
    means = output.mean(axis=(1, 2))
    np.testing.assert_allclose(means, means.mean(axis=-1, keepdims=True).repeat(3, -1), rtol=1e-5)
    np.testing.assert_allclose(means.mean(axis=-1), image.mean(axis=(1, 2, 3)), rtol=1e-5)


def test_srm_residual_of_a_constant_image_is_zero_everywhere():
    output = make_filter("srm")(np.full((1, 12, 12, 3), 137.0, "float32")).numpy()
    assert output.shape == (1, 12, 12, 3)
    np.testing.assert_allclose(output, 0.0, atol=1e-4)
    np.testing.assert_allclose(SRM_KERNELS.sum(axis=(1, 2)), 0.0, atol=1e-7)


def test_srm_residual_responds_to_noise():
    assert np.abs(make_filter("srm")(noise_images()).numpy()).mean() > 10.0


def test_gaussian_blur_keeps_constants_and_smooths_noise():
    blur = make_filter("gaussian_blur", sigma=1.0, kernel_size=5)
    np.testing.assert_allclose(blur(np.full((1, 10, 10, 3), 80.0, "float32")).numpy(), 80.0, rtol=1e-5)
    noise = noise_images()
    assert blur(noise).numpy().var() < 0.5 * noise.var()
    np.testing.assert_allclose(GaussianBlur(sigma=2.0, kernel_size=7).kernel().sum(), 1.0, rtol=1e-6)


def test_median_blur_removes_salt_and_pepper():
    image = np.full((1, 12, 12, 3), 100.0, "float32")
    image[0, 3, 4, :] = 255.0
    image[0, 7, 8, 1] = 0.0
    image[0, 0, 0, :] = 255.0  # on the border: reflect padding must handle it
    np.testing.assert_array_equal(make_filter("median_blur", kernel_size=3)(image).numpy(), 100.0)


def test_median_is_the_true_median():
    image = noise_images(shape=(1, 9, 9, 1))
    output = MedianBlur(kernel_size=3)(image).numpy()
    np.testing.assert_array_equal(output[0, 4, 4, 0], np.median(image[0, 3:6, 3:6, 0]))


@pytest.mark.parametrize("bad", [0, 2, -3, 2.0, True])
def test_even_or_bad_kernel_size_is_rejected(bad):
    with pytest.raises(ValueError, match="Received: kernel_size="):
        make_filter("median_blur", kernel_size=bad)


def test_unknown_filter_lists_valid_names():
    with pytest.raises(ValueError, match=r"Valid names: .*srm.*Received: filter='sobel'"):
        build_model("cnn_small2", 32, filter_name="sobel")


def test_none_builds_the_plain_model():
    assert make_filter("none") is None
    assert "filter" not in [layer.name for layer in build_model("cnn_small2", 32).layers]


@pytest.mark.parametrize("name", FILTERS)
def test_filter_is_the_same_eagerly_in_tf_data_and_in_a_reloaded_model(name, tmp_path):
    images = noise_images(1, (3, 32, 32, 3))
    layer = make_filter(name, sigma=1.5, kernel_size=3)
    eager = layer(images).numpy()
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2).map(layer)
    mapped = np.concatenate(list(dataset.as_numpy_iterator()))
    np.testing.assert_allclose(mapped, eager, rtol=1e-5, atol=1e-4)

    model = build_model("cnn_small2", 32, filter_name=name, filter_sigma=1.5, filter_kernel_size=3)
    assert [layer.name for layer in model.layers[:3]] == ["image", "filter", "rescale"]
    assert model.get_layer("filter").count_params() == 0
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert reloaded.get_layer("filter").get_config() == model.get_layer("filter").get_config()
    probe = keras.Model(reloaded.input, reloaded.get_layer("filter").output)
    np.testing.assert_allclose(probe(images).numpy(), eager, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(reloaded(images).numpy(), model(images).numpy(), rtol=1e-5, atol=1e-6)


def test_filter_stays_float32_under_mixed_precision():
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("cnn_small2", 32, filter_name="srm")
        assert model.get_layer("filter").compute_dtype == "float32"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_filtered_model_exports_and_serves_the_same(tmp_path):
    from aiclassify.export import PIXELS_SIGNATURE, export_saved_model

    model = build_model("cnn_small2", 32, filter_name="median_blur")
    export_saved_model(model, tmp_path / "saved_model", 32)
    images = noise_images(2, (2, 32, 32, 3))
    served = tf.saved_model.load(str(tmp_path / "saved_model")).signatures[PIXELS_SIGNATURE](pixels=images)
    np.testing.assert_allclose(served["probability_ai"].numpy(), model(images).numpy().ravel(), rtol=1e-5)
