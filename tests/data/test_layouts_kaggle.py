"""Named layouts of the Kaggle datasets: detection, default splits and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import image_writer

from aiclassify.data.layouts import LayoutError, detect_layout, load_layout, load_splits

write_image = image_writer(0)


def make_tree(root: Path, folders: dict[str, int], suffix: str = ".png") -> Path:
    """``count`` images in each folder ``name`` (a path relative to ``root``)."""
    for folder, count in folders.items():
        for index in range(count):
            write_image(root / folder / f"{index:03d}{suffix}")
    return root


def test_faces_layout_uses_its_three_splits(tmp_path):
    base = "real_vs_fake/real-vs-fake"
    folders = {f"{base}/{split}/{cls}": 3 for split in ("train", "valid", "test") for cls in ("real", "fake")}
    root = make_tree(tmp_path / "faces", folders, ".jpg")
    (root / "train.csv").write_text("id,label\n")  # the CSV files are optional and ignored
    assert detect_layout(root) == "faces-140k"
    layout, splits = load_layout(root, expected="faces-140k")
    assert splits.carved_splits == ()
    assert splits.counts() == {s: {"real": 3, "ai-generated": 3} for s in ("train", "validation", "test")}
    assert splits.root.name == "real-vs-fake"


def test_cifake_layout_carves_validation_from_train_deterministically(tmp_path):
    folders = {"train/REAL": 20, "train/FAKE": 20, "test/REAL": 4, "test/FAKE": 4}
    root = make_tree(tmp_path / "cifake", folders, ".jpg")
    assert detect_layout(root) == "cifake"
    layout, splits = load_layout(root)
    assert splits.carved_splits == ("validation",)
    assert splits.counts()["validation"] == {"real": 3, "ai-generated": 3}  # 15% of 20
    assert splits.counts()["test"] == {"real": 4, "ai-generated": 4}
    _, again = load_layout(root)
    validation = sorted(s.path for s in splits.splits["validation"])
    assert sorted(s.path for s in again.splits["validation"]) == validation


def test_realifake_layout_is_split_71_14_15_by_seed(tmp_path):
    root = make_tree(tmp_path / "general", {"Realifake/REAL": 100, "Realifake/FAKE": 100})
    assert detect_layout(root) == "realifake"
    layout, splits = load_layout(root, seed=3)
    counts = splits.counts()
    assert counts["train"] == {"real": 71, "ai-generated": 71}
    assert counts["validation"] == {"real": 14, "ai-generated": 14}
    assert counts["test"] == {"real": 15, "ai-generated": 15}
    _, other = load_layout(root, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert other.counts()["validation"] == {"real": 20, "ai-generated": 20}


@pytest.mark.parametrize(
    "folders",
    [
        {"real": 5, "ai": 5},
        {"images/Real": 5, "images/Fake": 5},
        {"train/real": 5, "train/fake": 5, "val/real": 2, "val/fake": 2},
    ],
)
def test_any_folder_of_class_folders_is_the_folders_layout(tmp_path, folders):
    root = make_tree(tmp_path / "mine", folders)
    assert detect_layout(root) == "folders"
    _, splits = load_layout(root)
    assert set(splits.splits) == {"train", "validation", "test"}
    assert sum(len(s) for s in splits.splits.values()) == sum(folders.values())


def test_unknown_layout_names_what_was_found_and_what_is_expected(tmp_path):
    root = make_tree(tmp_path / "odd", {"cats": 2, "dogs": 2})
    with pytest.raises(LayoutError) as error:
        detect_layout(root)
    message = str(error.value)
    assert "Known layouts" in message and "cifake" in message and "faces-140k" in message
    assert "cats/ (2 files)" in message and "dogs/" in message


def test_missing_folder_is_a_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")


def test_half_extracted_split_is_reported(tmp_path):
    root = make_tree(tmp_path / "cifake", {"train/REAL": 2, "train/FAKE": 2, "test/REAL": 2})
    with pytest.raises(LayoutError, match=r"test/ holds \['REAL'\]"):
        detect_layout(root)
    with pytest.raises(LayoutError, match=r"test/ holds \['REAL'\]"):
        load_splits(root, 0.1, 0.1, 0)


def test_expected_layout_mismatch_names_both(tmp_path):
    root = make_tree(tmp_path / "cifake", {"train/REAL": 2, "train/FAKE": 2, "test/REAL": 2, "test/FAKE": 2})
    with pytest.raises(LayoutError, match="Expected the faces-140k layout.*Found the cifake layout"):
        load_layout(root, expected="faces-140k")
    with pytest.raises(ValueError, match="Unknown layout"):
        load_layout(root, expected="imagenet")


@pytest.mark.slow
def test_real_shared_layouts_are_detected(shared_data):
    assert detect_layout(shared_data / "cifake") == "cifake"
    layout, faces = load_layout(shared_data / "faces", expected="faces-140k")
    assert faces.counts()["train"] == {"real": 264, "ai-generated": 252}
    _, cifake = load_layout(shared_data / "cifake", expected="cifake")
    assert cifake.counts()["test"] == {"real": 5013, "ai-generated": 4998}
    assert cifake.carved_splits == ("validation",)
