"""Training-only augmentation: it changes training batches only, reproducibly."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_overrides
from PIL import Image

from aiclassify import runs
from aiclassify.config import DegradeConfig, load_config
from aiclassify.data import augment as augment_module
from aiclassify.data.augment import (
    AUGMENT_NAMES,
    DEGRADATIONS,
    AugmentOptions,
    apply_degradation,
    degradation_draws,
    degrade_for_validation,
    gaussian_blur,
    make_augmenter,
    make_degrader,
)
from aiclassify.data.layouts import Sample, load_splits
from aiclassify.data.pipeline import make_dataset
from aiclassify.train import train
from aiclassify.train.trainer import augment_options


@pytest.fixture(scope="module")
def samples(demo_data):
    return load_splits(demo_data, 0.15, 0.15, seed=1).splits["train"][:12]


def first_batch(samples, training: bool, augment=None, seed: int = 7) -> np.ndarray:
    dataset = make_dataset(samples, 32, 6, training=training, seed=seed, cache="none", augment=augment)
    images, _ = next(iter(dataset))
    assert images.dtype == "uint8" and images.shape == (6, 32, 32, 3)
    return images.numpy()


@pytest.mark.parametrize("name", AUGMENT_NAMES)
def test_augmentation_changes_training_batches_only(samples, name):
    augment = make_augmenter([name])
    plain_train = first_batch(samples, True)
    augmented = first_batch(samples, True, augment)
    assert not np.array_equal(augmented, plain_train)
    np.testing.assert_array_equal(first_batch(samples, True, augment), augmented)  # same seed
    assert not np.array_equal(first_batch(samples, True, augment, seed=8), augmented)
    np.testing.assert_array_equal(first_batch(samples, False, augment), first_batch(samples, False))


def test_epochs_draw_new_augmentations(samples):
    dataset = make_dataset(samples, 32, 12, True, seed=3, cache="memory", augment=make_augmenter(["noise"]))
    first, second = (next(iter(dataset))[0].numpy() for _ in range(2))
    assert not np.array_equal(first, second)


def test_all_augmentations_chain(samples):
    images = first_batch(samples, True, make_augmenter(list(AUGMENT_NAMES)))
    assert images.std() > 0


def test_empty_list_is_off():
    assert make_augmenter([]) is None


def test_unknown_name_lists_valid_names():
    pattern = r"Valid names: .*'hflip'.*'downscale'.*Received: augment=\['blur'\]"
    with pytest.raises(ValueError, match=pattern):
        make_augmenter(["blur"])


def test_bad_strength_is_rejected():
    with pytest.raises(ValueError, match="Received: min_scale=0.0"):
        AugmentOptions(min_scale=0.0)


def test_jpeg_quality_range_must_leave_room_below_100():
    with pytest.raises(ValueError, match=r"must be in \[0, 100\). Received: jpeg_min_quality=100"):
        AugmentOptions(jpeg_min_quality=100)
    augment = make_augmenter(["jpeg"], AugmentOptions(jpeg_min_quality=99))
    image = tf.zeros((8, 8, 3), tf.uint8)
    assert augment(image, tf.constant([1, 2], tf.int64)).shape == (8, 8, 3)


def test_config_wires_names_and_strengths():
    config = load_config(None, ["train.augment=[hflip, jpeg]", "train.augment_jpeg_min_quality=30"])
    assert config.train.augment == ("hflip", "jpeg")
    assert augment_options(config).jpeg_min_quality == 30
    assert load_config().train.augment == ()


def test_run_with_filter_and_augmentation_records_both(demo_data, tmp_path):
    extra = {"data.filter": "srm", "train.augment": "[hflip, noise]", "train.epochs": 1, "name": "aug"}
    train(load_config(None, tiny_overrides(demo_data, **extra)), tmp_path / "run")
    metadata = runs.read_json(tmp_path / "run" / runs.METADATA_FILE)
    assert metadata["filter"] == {"name": "srm", "sigma": 1.0, "kernel_size": 3}
    assert metadata["augment"] == ["hflip", "noise"]
    saved = load_config(tmp_path / "run" / runs.CONFIG_FILE)
    assert saved.train.augment == ("hflip", "noise") and saved.data.filter == "srm"


# --- train.degrade ---------------------------------------------------------------------------------


def noise_pixels(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def smooth_pixels(size: int = 32) -> np.ndarray:
    """A gradient with a little noise: JPEG, blur and resampling all change it, none erases it."""
    x = np.linspace(0, 255, size)
    base = np.stack(
        [x[None, :].repeat(size, 0), x[:, None].repeat(size, 1), 255 - x[None, :].repeat(size, 0)], -1
    )
    return np.clip(base + np.random.default_rng(0).normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def draws_over_seeds(degrade: DegradeConfig, count: int = 2000) -> dict[str, np.ndarray]:
    """Each degradation's (applies, strength) for ``count`` seeds, computed in one tf.data pass."""
    seeds = tf.data.Dataset.range(count).map(lambda i: tf.stack([tf.constant(11, tf.int64), i]))
    mapped = seeds.map(lambda seed: degradation_draws(degrade, seed)).batch(count)
    batch = next(iter(mapped))
    return {name: (applies.numpy(), strength.numpy()) for name, (applies, strength) in batch.items()}


def test_degradations_off_make_no_augmenter():
    assert make_augmenter([], None, DegradeConfig()) is None
    assert make_degrader(DegradeConfig()) is None
    assert make_augmenter([], None, DegradeConfig(blur_prob=0.1)) is not None


@pytest.mark.parametrize("name", DEGRADATIONS)
@pytest.mark.parametrize("probability", [0.5, 0.2])
def test_each_degradation_applies_with_its_probability(name, probability):
    degrade = DegradeConfig(**{f"{name}_prob": probability})
    draws = draws_over_seeds(degrade)
    assert abs(draws[name][0].mean() - probability) < 0.05
    others = [other for other in DEGRADATIONS if other != name]
    assert not any(draws[other][0].any() for other in others)


def test_degradations_are_drawn_independently():
    draws = draws_over_seeds(DegradeConfig(blur_prob=0.5, jpeg_prob=0.5, downscale_prob=0.5, crop_prob=0.5))
    applies = np.stack([draws[name][0] for name in DEGRADATIONS])
    assert np.all(np.abs(applies.mean(axis=1) - 0.5) < 0.05)
    assert abs((applies[2] & applies[3]).mean() - 0.25) < 0.04  # blur and jpeg together
    assert abs((~applies.any(axis=0)).mean() - 1 / 16) < 0.02


def test_degradation_strengths_stay_in_their_ranges():
    degrade = DegradeConfig(
        blur_prob=1.0,
        blur_sigma_max=1.5,
        jpeg_prob=1.0,
        jpeg_quality_min=50,
        downscale_prob=1.0,
        downscale_min_scale=0.5,
        crop_prob=1.0,
        crop_min_fraction=0.8,
    )
    draws = draws_over_seeds(degrade)
    sigma, quality = draws["blur"][1], draws["jpeg"][1]
    assert sigma.min() >= 0 and sigma.max() <= 1.5 and sigma.max() > 1.4 and sigma.min() < 0.1
    assert quality.dtype == np.int32 and set(quality) == set(range(50, 101))  # every quality, 100 included
    scale, fraction = draws["downscale"][1], draws["crop"][1]
    assert scale.min() >= 0.5 and scale.max() <= 1.0 and scale.min() < 0.52 and scale.max() > 0.98
    assert fraction.min() >= 0.8 and fraction.max() <= 1.0 and fraction.min() < 0.82
    for name in DEGRADATIONS:  # uniform: the mean is mid-range
        low, high = {"blur": (0, 1.5), "jpeg": (50, 100), "downscale": (0.5, 1), "crop": (0.8, 1)}[name]
        assert abs(draws[name][1].mean() - (low + high) / 2) < 0.03 * (high - low)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_a_degradation_is_the_op_at_the_drawn_strength(name):
    degrade = DegradeConfig(**{f"{name}_prob": 1.0})
    degrader = make_degrader(degrade)
    image = tf.constant(smooth_pixels())
    for index in range(3):
        seed = tf.constant([5, index], tf.int64)
        applies, strength = degradation_draws(degrade, seed)[name]
        assert bool(applies)
        position_seed = augment_module._degradation_seeds(seed)[name][2]
        expected = apply_degradation(name, image, strength, position_seed)
        expected = np.clip(np.round(expected.numpy()), 0, 255).astype(np.uint8)
        out = degrader(image, seed).numpy()
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == np.uint8 and out.shape == (32, 32, 3)


def test_jpeg_degradation_is_a_real_reencode_at_the_drawn_quality():
    image = tf.constant(smooth_pixels())
    out = apply_degradation("jpeg", image, tf.constant(40), tf.constant([0, 0], tf.int64)).numpy()
    np.testing.assert_array_equal(out, tf.image.adjust_jpeg_quality(image, 40).numpy())


def test_degradation_strength_orders_the_damage():
    image = tf.constant(smooth_pixels(64))
    seed = tf.constant([0, 0], tf.int64)

    def error(name, strength):
        out = apply_degradation(name, image, tf.constant(strength), seed).numpy()
        return np.abs(out - image.numpy().astype(np.float32)).mean()

    assert error("blur", 0.0) == 0 and 0 < error("blur", 0.8) < error("blur", 2.5)
    assert error("jpeg", 95) < error("jpeg", 30)
    assert error("downscale", 1.0) == 0 and 0 < error("downscale", 0.8) < error("downscale", 0.5)
    assert error("crop", 1.0) == 0 and error("crop", 0.7) > 0


def test_gaussian_blur_matches_scipy_with_reflect_padding():
    from scipy.ndimage import gaussian_filter

    image = np.random.default_rng(1).random((30, 41, 3)).astype(np.float32) * 255
    for sigma in (0.5, 1.3, 3.0):
        expected = np.stack(
            [gaussian_filter(image[..., c], sigma, mode="mirror", truncate=3.0) for c in range(3)], -1
        )
        np.testing.assert_allclose(gaussian_blur(tf.constant(image), sigma).numpy(), expected, atol=1e-3)
    uint8 = noise_pixels(2)
    np.testing.assert_array_equal(gaussian_blur(tf.constant(uint8), 0.0).numpy(), uint8.astype(np.float32))
    tiny = gaussian_blur(tf.constant(noise_pixels(3, size=4)), 3.0)  # radius clipped to fit a 4x4 image
    assert tiny.shape == (4, 4, 3) and np.isfinite(tiny.numpy()).all()


def test_degradation_depends_on_the_seed_only_never_on_the_image():
    """The same seed degrades a real and an AI-generated image alike; the augmenter has no label input."""
    degrade = DegradeConfig(blur_prob=0.5, jpeg_prob=0.5, downscale_prob=0.5, crop_prob=0.5)
    degrader = make_degrader(degrade)
    assert list(inspect.signature(degrader).parameters) == ["image", "seed"]
    jpeg_only = make_degrader(DegradeConfig(jpeg_prob=0.5))
    first, second = tf.constant(noise_pixels(1)), tf.constant(noise_pixels(2))
    for index in range(40):
        seed = tf.constant([9, index], tf.int64)
        changed = [not np.array_equal(jpeg_only(x, seed).numpy(), x.numpy()) for x in (first, second)]
        assert changed[0] == changed[1] == bool(degradation_draws(degrade, seed)["jpeg"][0])
        np.testing.assert_array_equal(degrader(first, seed), degrader(first, seed))


@pytest.fixture(scope="module")
def two_class_samples(tmp_path_factory):
    """200 noise PNGs per class, interleaved (both classes have the same kind of content)."""
    folder = tmp_path_factory.mktemp("two-class")
    samples = []
    for index in range(400):
        path = folder / f"{index}.png"
        Image.fromarray(noise_pixels(1000 + index)).save(path)
        samples.append(Sample(str(path), index % 2))
    return samples


def test_both_classes_are_degraded_alike_in_the_training_pipeline(two_class_samples):
    """Five epochs over 200 images per class: each class has half of its images re-encoded."""
    probability = 0.5
    degrade = DegradeConfig(jpeg_prob=probability)
    clean = np.stack([np.asarray(Image.open(sample.path)) for sample in two_class_samples])
    labels = np.array([sample.label for sample in two_class_samples], np.float32)
    dataset = make_dataset(
        two_class_samples,
        32,
        400,
        True,
        seed=4,
        cache="memory",
        shuffle_buffer=1,  # keeps file order
        augment=make_augmenter([], None, degrade),
    )
    changed = {0.0: [], 1.0: []}
    for _ in range(5):  # every epoch draws new seeds
        images, batch_labels = next(iter(dataset))
        np.testing.assert_array_equal(batch_labels.numpy(), labels)
        differs = np.any(images.numpy() != clean, axis=(1, 2, 3))
        for label in changed:
            changed[label].extend(differs[labels == label])
    fractions = [np.mean(changed[label]) for label in (0.0, 1.0)]
    assert all(abs(fraction - probability) < 0.05 for fraction in fractions), fractions
    assert abs(fractions[0] - fractions[1]) < 0.07, fractions


def test_degradations_change_training_batches_only_and_reproducibly(samples):
    augment = make_augmenter(
        [], None, DegradeConfig(blur_prob=0.5, jpeg_prob=0.5, downscale_prob=0.5, crop_prob=0.5)
    )
    degraded = first_batch(samples, True, augment)
    assert not np.array_equal(degraded, first_batch(samples, True))
    np.testing.assert_array_equal(first_batch(samples, True, augment), degraded)
    assert not np.array_equal(first_batch(samples, True, augment, seed=8), degraded)
    np.testing.assert_array_equal(first_batch(samples, False, augment), first_batch(samples, False))


def test_degradations_run_after_the_augment_ops_and_leave_their_draws_alone(samples):
    plain = first_batch(samples, True, make_augmenter(["noise", "hflip"]))
    never = DegradeConfig(blur_prob=1e-12)  # active, but its draw never falls below 1e-12 here
    np.testing.assert_array_equal(
        first_batch(samples, True, make_augmenter(["noise", "hflip"], None, never)), plain
    )
    image, seed = tf.constant(smooth_pixels()), tf.constant([3, 3], tf.int64)
    jpeg = DegradeConfig(jpeg_prob=1.0)
    composed = make_augmenter(["hflip", "vflip"], None, jpeg)(image, seed)
    flipped = make_augmenter(["hflip", "vflip"])(image, seed)
    np.testing.assert_array_equal(composed, make_degrader(jpeg)(flipped, seed))


def test_validation_copies_degrade_at_least_half_the_time():
    raised = degrade_for_validation(DegradeConfig(blur_prob=0.8, jpeg_quality_min=60))
    assert raised.probabilities == {"blur": 0.8, "jpeg": 0.5, "downscale": 0.5, "crop": 0.5}
    assert raised.jpeg_quality_min == 60  # strengths untouched
