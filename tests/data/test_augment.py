"""Training-only augmentation: it changes training batches only, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_overrides

from aiclassify import runs
from aiclassify.config import load_config
from aiclassify.data.augment import AUGMENT_NAMES, AugmentOptions, make_augmenter
from aiclassify.data.layouts import load_splits
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
