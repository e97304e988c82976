"""Find the splits and class folders of an image dataset on disk.

A dataset is any folder holding ``real`` and ``fake`` class folders (any letter case), either
directly or under split folders (``train``, ``valid``/``val``/``validation``, ``test``). The folder
may sit a few levels down, as in the Kaggle archives (``real_vs_fake/real-vs-fake/train/real``).
Splits the dataset lacks are carved from the others by a seeded, per-class split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REAL_NAMES = frozenset({"real"})
FAKE_NAMES = frozenset({"fake", "ai", "ai-generated", "ai_generated", "generated", "synthetic"})
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "validation",
    "val": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}
SPLITS = ("train", "validation", "test")
MAX_SEARCH_DEPTH = 3


class LayoutError(ValueError):
    """The folder does not hold a dataset of real and fake class folders."""


@dataclass(frozen=True)
class Sample:
    """One image file and its label (0 real, 1 AI-generated)."""

    path: str
    label: int


@dataclass(frozen=True)
class DatasetSplits:
    """Samples per split, and where they came from."""

    root: Path
    splits: dict[str, list[Sample]]
    class_folders: dict[str, str]
    carved_splits: tuple[str, ...] = ()
    split_folders: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of images per split and class."""
        return {
            split: {
                "real": sum(1 for s in samples if s.label == 0),
                "ai-generated": sum(1 for s in samples if s.label == 1),
            }
            for split, samples in self.splits.items()
        }


def class_dirs(directory: Path) -> dict[str, Path] | None:
    """Map ``real``/``fake`` to the class folders directly inside ``directory``, if both exist."""
    found: dict[str, Path] = {}
    for child in _subdirs(directory):
        lowered = child.name.lower()
        if lowered in REAL_NAMES:
            found.setdefault("real", child)
        elif lowered in FAKE_NAMES:
            found.setdefault("fake", child)
    return found if len(found) == 2 else None


def single_class_samples(directory: Path) -> list[Sample] | None:
    """Every image of the one class folder directly inside ``directory`` (``real`` or ``fake``, not
    both: e.g. a set of fakes from another generator, for out-of-distribution checks), else None."""
    children = {child.name.lower(): child for child in _subdirs(directory)}
    found = [(0, children[name]) for name in sorted(REAL_NAMES & children.keys())]
    found += [(1, children[name]) for name in sorted(FAKE_NAMES & children.keys())]
    if len(found) != 1:
        return None
    label, folder = found[0]
    return [Sample(path, label) for path in list_images(folder)]


def split_dirs(directory: Path) -> dict[str, Path] | None:
    """Map split names to split folders inside ``directory`` that each hold both class folders."""
    found = {
        SPLIT_NAMES[child.name.lower()]: child
        for child in _subdirs(directory)
        if child.name.lower() in SPLIT_NAMES and class_dirs(child)
    }
    return found or None


def find_dataset_root(root: Path) -> Path:
    """The one folder at or below ``root`` that holds split folders or class folders.

    Searches ``MAX_SEARCH_DEPTH`` levels down, not below a match; more than one match is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"Dataset folder does not exist: {root}")
    matches: list[Path] = []
    frontier = [root]
    for _ in range(MAX_SEARCH_DEPTH + 1):
        found = [d for d in frontier if split_dirs(d) or class_dirs(d)]
        matches.extend(found)
        frontier = [child for d in frontier if d not in found for child in _subdirs(d)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LayoutError(
            f"Several datasets found under {root}: {[str(m) for m in matches]}. "
            "Point data.path at one of them."
        )
    top = sorted(child.name for child in _subdirs(root))[:20]
    raise LayoutError(
        f"No dataset found under {root}: expected class folders 'real' and 'fake' (any case), "
        f"optionally inside split folders 'train', 'valid'/'val', 'test'. Found folders: {top}"
    )


def list_images(directory: Path) -> list[str]:
    """All non-hidden files below ``directory``, sorted; unreadable ones are weeded out later."""
    paths = []
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        paths.extend(os.path.join(folder, f) for f in files if not f.startswith("."))
    return sorted(paths)


def load_splits(root: Path, val_fraction: float, test_fraction: float, seed: int) -> DatasetSplits:
    """Discover the dataset under ``root`` and return its train/validation/test samples."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1). Received: {name}={value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            "val_fraction + test_fraction must leave images for training. "
            f"Received: val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    dataset_root = find_dataset_root(root)
    _check_split_folders(dataset_root)
    folders = split_dirs(dataset_root) or {"train": dataset_root}
    if "train" not in folders:
        raise LayoutError(f"{dataset_root} has split folders {sorted(folders)} but no 'train' split.")
    splits: dict[str, list[Sample]] = {}
    class_folders: dict[str, str] = {}
    for split, folder in folders.items():
        classes = class_dirs(folder)
        class_folders.update({label: path.name for label, path in classes.items()})
        splits[split] = [
            Sample(path, label)
            for label, key in enumerate(("real", "fake"))
            for path in list_images(classes[key])
        ]
    carved = tuple(s for s in ("test", "validation") if s not in splits)
    fractions = {"test": test_fraction, "validation": val_fraction}
    remaining_share = 1.0
    for split in carved:
        share = fractions[split] / remaining_share
        splits["train"], splits[split] = _carve(splits["train"], share, seed)
        remaining_share -= fractions[split]
    rng = np.random.default_rng(seed)
    shuffled = {name: _shuffled(splits[name], rng) for name in SPLITS if name in splits}
    return DatasetSplits(
        root=dataset_root,
        splits=shuffled,
        class_folders=class_folders,
        carved_splits=carved,
        split_folders={name: str(path) for name, path in folders.items()},
    )


def _carve(samples: list[Sample], share: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split ``share`` of each class off ``samples``, the same way for the same files and seed."""
    kept: list[Sample] = []
    taken: list[Sample] = []
    for label in (0, 1):
        members = sorted((s for s in samples if s.label == label), key=lambda s: s.path)
        order = np.random.default_rng(seed + label).permutation(len(members))
        count = int(round(len(members) * share))
        taken.extend(members[i] for i in order[:count])
        kept.extend(members[i] for i in order[count:])
    return kept, taken


def _shuffled(samples: list[Sample], rng: np.random.Generator) -> list[Sample]:
    return [samples[i] for i in rng.permutation(len(samples))]


def _subdirs(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


# --- Named layouts of the Kaggle datasets ---------------------------------------------------------

LAYOUTS = {
    "faces-140k": "real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake} "
    "(xhlulu/140k-real-and-fake-faces)",
    "cifake": "{train,test}/{REAL,FAKE} (birdy654/cifake-real-and-ai-generated-synthetic-images)",
    "realifake": "Realifake/{REAL,FAKE}, no split folders (sattyam96/realifake)",
    "folders": "real/fake class folders (any case), optionally inside train/valid(val)/test split folders",
}
"""The layouts :func:`detect_layout` names, and what each looks like on disk."""

LAYOUT_FRACTIONS = {
    "faces-140k": (0.14, 0.15),  # unused: all three splits ship with the dataset
    "cifake": (0.15, 0.15),  # validation carved from train; test ships with the dataset
    "realifake": (0.14, 0.15),  # 71/14/15 train/validation/test
    "folders": (0.14, 0.15),
}
"""Default (val_fraction, test_fraction) per layout, for the splits a layout lacks."""


def detect_layout(root: Path) -> str:
    """Name the layout of the dataset at or below ``root``: one of :data:`LAYOUTS`.

    Raises :class:`LayoutError` naming what was found and what was expected when no dataset is found
    or when a split folder lacks one of its class folders (a half-extracted download).
    """
    try:
        dataset_root = find_dataset_root(root)
    except LayoutError as error:
        raise LayoutError(f"{error}\n{_expected_layouts()}\nFound:\n{describe_folders(Path(root))}") from None
    _check_split_folders(dataset_root)
    splits = split_dirs(dataset_root)
    if splits:
        split_names = {folder.name for folder in splits.values()}
        class_names = {path.name for folder in splits.values() for path in class_dirs(folder).values()}
        if split_names == {"train", "valid", "test"} and class_names == {"real", "fake"}:
            return "faces-140k"
        if split_names == {"train", "test"} and class_names == {"REAL", "FAKE"}:
            return "cifake"
        return "folders"
    if dataset_root.name.lower() == "realifake":
        return "realifake"
    return "folders"


def load_layout(
    root: Path,
    expected: str | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
) -> tuple[str, DatasetSplits]:
    """Detect the layout under ``root`` (checking it is ``expected`` when given) and load its splits.

    Fractions left as None take the layout's defaults from :data:`LAYOUT_FRACTIONS`; splits the
    dataset ships with are used as they are, missing ones are carved by :func:`load_splits`.
    """
    if expected is not None and expected not in LAYOUTS:
        raise ValueError(f"Unknown layout. Valid layouts: {sorted(LAYOUTS)}. Received: expected={expected!r}")
    layout = detect_layout(root)
    if expected is not None and layout != expected:
        raise LayoutError(
            f"Expected the {expected} layout under {root}: {LAYOUTS[expected]}. "
            f"Found the {layout} layout instead:\n{describe_folders(Path(root))}"
        )
    default_val, default_test = LAYOUT_FRACTIONS[layout]
    splits = load_splits(
        root,
        default_val if val_fraction is None else val_fraction,
        default_test if test_fraction is None else test_fraction,
        seed,
    )
    return layout, splits


def describe_folders(root: Path, depth: int = MAX_SEARCH_DEPTH, limit: int = 30) -> str:
    """An indented listing of the folders under ``root`` (with file counts), for error messages."""
    lines: list[str] = []

    def walk(folder: Path, level: int) -> None:
        for child in _subdirs(folder):
            if len(lines) >= limit:
                return
            files = sum(1 for p in child.iterdir() if p.is_file()) if child.is_dir() else 0
            lines.append(f"{'  ' * (level + 1)}{child.name}/ ({files} files)")
            if level + 1 < depth:
                walk(child, level + 1)

    if not Path(root).is_dir():
        return f"  {root} does not exist"
    walk(Path(root), 0)
    if len(lines) >= limit:
        lines.append("  ...")
    return "\n".join(lines) if lines else f"  no folders in {root}"


def _check_split_folders(dataset_root: Path) -> None:
    incomplete = []
    for child in _subdirs(dataset_root):
        if child.name.lower() in SPLIT_NAMES and not class_dirs(child):
            names = [p.name for p in _subdirs(child)]
            incomplete.append(f"{child.name}/ holds {names}")
    if incomplete:
        raise LayoutError(
            f"Split folders under {dataset_root} lack a 'real' or 'fake' class folder: "
            f"{'; '.join(incomplete)}. Each split needs both (is the download or extraction incomplete?)."
        )


def _expected_layouts() -> str:
    return "Known layouts:\n" + "\n".join(f"  {name}: {text}" for name, text in LAYOUTS.items())
