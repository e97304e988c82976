"""Discovery of splits and class folders, and the seeded split of datasets that lack splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiclassify.data.layouts import LayoutError, find_dataset_root, load_splits


def make_images(folder: Path, count: int, prefix: str = "img") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"{prefix}_{index:03d}.jpg").write_bytes(b"placeholder")


def test_nested_kaggle_style_splits_any_case(tmp_path):
    base = tmp_path / "real_vs_fake" / "real-vs-fake"
    for split, count in (("train", 6), ("valid", 3), ("test", 2)):
        make_images(base / split / "Real", count)
        make_images(base / split / "FAKE", count)
    dataset = load_splits(tmp_path, 0.2, 0.2, seed=1)
    assert dataset.root == base
    assert dataset.counts() == {
        "train": {"real": 6, "ai-generated": 6},
        "validation": {"real": 3, "ai-generated": 3},
        "test": {"real": 2, "ai-generated": 2},
    }
    assert dataset.carved_splits == ()
    assert dataset.class_folders == {"real": "Real", "fake": "FAKE"}


def test_labels_follow_folder_names_not_order(tmp_path):
    make_images(tmp_path / "fake", 2, "f")
    make_images(tmp_path / "real", 3, "r")
    dataset = load_splits(tmp_path, 0.0, 0.0, seed=0)
    for sample in dataset.splits["train"]:
        assert sample.label == (1 if Path(sample.path).name.startswith("f") else 0)


def test_missing_validation_is_carved_from_train(tmp_path):
    for split in ("train", "test"):
        make_images(tmp_path / split / "REAL", 20)
        make_images(tmp_path / split / "FAKE", 20)
    dataset = load_splits(tmp_path, 0.15, 0.5, seed=3)
    assert dataset.carved_splits == ("validation",)
    assert dataset.counts()["validation"] == {"real": 3, "ai-generated": 3}
    assert dataset.counts()["test"] == {"real": 20, "ai-generated": 20}


def test_flat_dataset_split_is_stratified_disjoint_and_deterministic(tmp_path):
    make_images(tmp_path / "Realifake" / "REAL", 100)
    make_images(tmp_path / "Realifake" / "FAKE", 60)
    first = load_splits(tmp_path, 0.14, 0.15, seed=7)
    again = load_splits(tmp_path, 0.14, 0.15, seed=7)
    other = load_splits(tmp_path, 0.14, 0.15, seed=8)
    assert first.counts() == {
        "train": {"real": 71, "ai-generated": 43},
        "validation": {"real": 14, "ai-generated": 8},
        "test": {"real": 15, "ai-generated": 9},
    }
    paths = {name: {s.path for s in samples} for name, samples in first.splits.items()}
    assert not (paths["train"] & paths["validation"]) and not (paths["train"] & paths["test"])
    assert sum(len(p) for p in paths.values()) == 160
    assert first.splits == again.splits
    assert {s.path for s in other.splits["test"]} != paths["test"]


def test_training_list_is_shuffled_across_classes(tmp_path):
    make_images(tmp_path / "real", 50)
    make_images(tmp_path / "fake", 50)
    labels = [s.label for s in load_splits(tmp_path, 0.0, 0.0, seed=0).splits["train"]]
    assert labels[:50] != [0] * 50


def test_unknown_layout_names_what_was_found(tmp_path):
    make_images(tmp_path / "cats", 2)
    make_images(tmp_path / "dogs", 2)
    with pytest.raises(LayoutError, match=r"expected class folders 'real' and 'fake'.*cats"):
        find_dataset_root(tmp_path)


def test_missing_folder_is_a_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        find_dataset_root(tmp_path / "absent")


def test_bad_fractions_are_rejected(tmp_path):
    make_images(tmp_path / "real", 2)
    make_images(tmp_path / "fake", 2)
    with pytest.raises(ValueError, match="Received: val_fraction=0.6, test_fraction=0.5"):
        load_splits(tmp_path, 0.6, 0.5, seed=0)


def test_two_datasets_at_different_depths_are_ambiguous(tmp_path):
    make_images(tmp_path / "cifake" / "train" / "REAL", 1)
    make_images(tmp_path / "cifake" / "train" / "FAKE", 1)
    make_images(tmp_path / "faces" / "real_vs_fake" / "real-vs-fake" / "train" / "real", 1)
    make_images(tmp_path / "faces" / "real_vs_fake" / "real-vs-fake" / "train" / "fake", 1)
    with pytest.raises(LayoutError, match="Several datasets found"):
        find_dataset_root(tmp_path)


def test_half_extracted_split_is_an_error_not_a_silent_carve(tmp_path):
    for split in ("train", "test"):
        make_images(tmp_path / split / "REAL", 4)
    make_images(tmp_path / "train" / "FAKE", 4)
    with pytest.raises(LayoutError, match=r"test/ holds \['REAL'\]"):
        load_splits(tmp_path, 0.2, 0.2, seed=0)


def test_a_folder_of_one_class_lists_its_images_with_that_label(tmp_path):
    from aiclassify.data.layouts import single_class_samples

    make_images(tmp_path / "ood" / "Fake", 3)
    samples = single_class_samples(tmp_path / "ood")
    assert [sample.label for sample in samples] == [1, 1, 1]
    assert all(Path(sample.path).parent.name == "Fake" for sample in samples)
    make_images(tmp_path / "both" / "real", 1)
    make_images(tmp_path / "both" / "fake", 1)
    assert single_class_samples(tmp_path / "both") is None  # a dataset of both classes is not one class
