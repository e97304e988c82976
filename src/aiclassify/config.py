"""Typed, frozen configuration schema and strict YAML loading.

Defaults live here and nowhere else; YAML files and ``--set`` options only override them.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

DataSource = Literal["folder", "demo"]
"""``data.source``: ``folder`` reads images under ``data.path``; ``demo`` uses the embedded demo dataset."""
DatasetKey = Literal["", "faces", "general", "cifake"]
"""``data.dataset``: the Kaggle dataset key used for download hints (``""``: none)."""
CacheMode = Literal["memory", "disk", "none"]
"""``data.cache``: where decoded images are cached between epochs."""
FilterName = Literal["none", "gray_world", "gaussian_blur", "median_blur", "srm"]
"""``data.filter``: the forensic input filter inside the model (see :mod:`aiclassify.filters`)."""
ModelName = Literal[
    "cnn5",
    "lenet5",
    "lenet2",
    "cnn_small2",
    "cnn_small3",
    "cnn_small4",
    "cnn_small_nopool",
    "vgg16",
    "resnet50",
    "efficientnetb0",
    "densenet121",
    "resnet18",
    "vit_b16",
    "logistic_pixels",
    "cooccurrence_logistic",
    "backbone_svm",
    "ensemble",
]
"""``model.name``: the registered architectures (see :mod:`aiclassify.models`); ``logistic_pixels``,
``cooccurrence_logistic`` and ``backbone_svm`` are fitted by scikit-learn, not by gradient descent
(:mod:`aiclassify.classical`); ``ensemble`` averages the finished runs ``model.members``
(:mod:`aiclassify.ensemble`)."""
FeatureBackbone = Literal["resnet18", "resnet50", "vgg16", "efficientnetb0", "densenet121", "vit_b16"]
"""``model.feature_backbone``: the frozen backbone whose pooled features ``backbone_svm`` classifies."""
Padding = Literal["same", "valid"]
"""``model.padding``: convolution padding."""
OptimizerName = Literal[
    "adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad", "adadelta", "adamax", "ftrl", "lion", "adafactor"
]
"""``train.optimizer``: Keras optimizer names that ``keras.optimizers.get`` resolves."""
LrSchedule = Literal["constant", "cosine"]
"""``train.lr_schedule``: a constant rate, or a cosine decay to 0 over all training steps."""
Precision = Literal["float32", "mixed_float16"]
"""``train.precision``: the Keras dtype policy."""
DistributeStrategy = Literal["none", "mirrored", "multi_worker"]
"""``train.distribute``: the ``tf.distribute`` strategy."""
MonitorMetric = Literal["val_loss", "val_accuracy", "loss", "accuracy"]
"""``train.monitor``: the logged metric that checkpointing and early stopping follow."""
AugmentName = Literal[
    "hflip", "vflip", "rotation", "crop_resize", "noise", "color_jitter", "jpeg", "downscale"
]
"""One ``train.augment`` item (see :mod:`aiclassify.data.augment`)."""


WHOLE_MODEL_SUFFIXES = (".keras", ".weights.h5")
"""``model.pretrained`` files that hold a whole model's weights (a run's ``model.keras``)."""
PRETRAINED_SUFFIXES = (*WHOLE_MODEL_SUFFIXES, ".h5")
"""The weights files ``model.pretrained`` loads (``.h5``: a Keras Applications backbone file)."""


class ConfigError(ValueError):
    """A configuration file or override does not match the schema."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split and fed."""

    source: DataSource = "folder"
    dataset: DatasetKey = ""
    path: str = ""  # dataset root; for `demo`, where to write it (default: the user cache)
    image_size: int = 224
    val_fraction: float = 0.14  # carved from train when the dataset has no validation split
    test_fraction: float = 0.15  # carved when the dataset has no test split
    cache: CacheMode = "memory"
    shuffle_buffer: int = 10_000
    demo_images_per_class: int = 1200  # only for source: demo
    demo_image_size: int = 32  # only for source: demo
    filter: FilterName = "none"  # docs/filters.md
    filter_sigma: float = 1.0  # gaussian_blur only
    filter_kernel_size: int = 3  # gaussian_blur and median_blur: odd window size
    # Training images at least image_size on both sides are randomly cropped to image_size at
    # native resolution instead of resized (no size shortcut); validation and test are resized.
    train_crop: bool = False
    # Seed of the validation/test carve; null: train.seed. Fixing it lets runs that differ only in
    # train.seed (the members of an ensemble) share one validation and test split.
    split_seed: int | None = None

    def carve_seed(self, train_seed: int) -> int:
        """The seed of the validation/test carve: ``split_seed``, or ``train_seed`` when it is unset."""
        return train_seed if self.split_seed is None else self.split_seed


@dataclass(frozen=True)
class ModelConfig:
    """Which registered architecture to build, and its options."""

    name: ModelName = "cnn5"
    dropout: float = 0.5
    padding: Padding = "same"  # cnn_small* only
    bn_momentum: float = 0.99  # Keras default; 0.9 lets short runs on small data converge
    # Starting weights: "none" (random); "imagenet" (backbones; downloaded once); a local ".keras" /
    # ".weights.h5" file of the whole model (e.g. a finished run's model.keras, to train it further);
    # or a Keras Applications ".h5" backbone file (the offline route to ImageNet weights; for resnet18
    # and vit_b16, a keras-hub preset's backbone "model.weights.h5").
    pretrained: str = "none"
    resize_to: int = 0  # backbones: upsample inputs to this side inside the model (0: as they come)
    feature_backbone: FeatureBackbone = "resnet18"  # backbone_svm: its frozen feature extractor
    # ensemble only: the finished run (or released model) folders whose models it averages
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name == "ensemble" and len(self.members) < 2:
            raise ValueError(
                "model.name=ensemble needs model.members: two or more finished run folders. "
                f"Received: members={list(self.members)}"
            )
        if self.pretrained not in ("none", "imagenet") and not self.pretrained.endswith(PRETRAINED_SUFFIXES):
            raise ValueError(
                'model.pretrained must be "none", "imagenet" or a path to a .keras, .weights.h5 or .h5 file. '
                f"Received: pretrained={self.pretrained!r}"
            )


def _check_probability(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value}")


@dataclass(frozen=True)
class DegradeConfig:
    """``train.degrade``: training-time degradations that copies of images suffer in the wild.

    Each is applied independently with its probability to every training image, whatever its
    label, after ``train.augment`` (see :mod:`aiclassify.data.augment`); all are off by default.
    """

    blur_prob: float = 0.0
    blur_sigma_max: float = 3.0  # Gaussian blur: sigma drawn uniformly from [0, max] (pixels)
    jpeg_prob: float = 0.0
    jpeg_quality_min: int = 30  # JPEG re-encoding: quality drawn uniformly from [min, 100]
    downscale_prob: float = 0.0
    downscale_min_scale: float = 0.5  # side scale drawn from [min, 1], antialiased, restored to size
    crop_prob: float = 0.0
    crop_min_fraction: float = 0.8  # random crop, side fraction drawn from [min, 1], resized back

    def __post_init__(self) -> None:
        for name in ("blur_prob", "jpeg_prob", "downscale_prob", "crop_prob"):
            _check_probability(self, name)
        if self.blur_sigma_max < 0:
            raise ValueError(f"blur_sigma_max must be >= 0. Received: blur_sigma_max={self.blur_sigma_max}")
        if not 0 <= self.jpeg_quality_min <= 100:
            raise ValueError(
                f"jpeg_quality_min must be in [0, 100]. Received: jpeg_quality_min={self.jpeg_quality_min}"
            )
        for name in ("downscale_min_scale", "crop_min_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]. Received: {name}={getattr(self, name)}")

    @property
    def probabilities(self) -> dict[str, float]:
        """Each degradation's probability, by name (``blur``, ``jpeg``, ``downscale``, ``crop``)."""
        return {
            "blur": self.blur_prob,
            "jpeg": self.jpeg_prob,
            "downscale": self.downscale_prob,
            "crop": self.crop_prob,
        }


@dataclass(frozen=True)
class FineTuneConfig:
    """``train.fine_tune``: the two-phase fine-tuning schedule of a backbone model (off by default).

    Phase 1 trains the first ``frozen_epochs`` epochs with the backbone frozen, so only the head
    learns, at ``train.learning_rate``. Phase 2 then unfreezes the backbone's top
    ``unfreeze_top_layers`` layers with weights (0: all of them) and trains on to ``train.epochs``
    at ``learning_rate``. The backbone's BatchNormalization layers stay frozen in both phases, so
    they run in inference mode on their (ImageNet) statistics. Both phases write one run directory,
    one history and one epoch count; early stopping watches phase 2 only. Backbone models only
    (:func:`aiclassify.backbones.backbone_names`); see :mod:`aiclassify.train.trainer`.
    """

    # Phase 1's length; 0: no schedule (the other two then go unused, with a warning), every layer
    # trains from the first epoch: `--set train.fine_tune.frozen_epochs=0` turns a config's schedule off.
    frozen_epochs: int = 0
    unfreeze_top_layers: int = 0  # phase 2: the top N backbone layers with weights; 0: the whole backbone
    learning_rate: float | None = None  # phase 2; null: a tenth of train.learning_rate

    def __post_init__(self) -> None:
        for name in ("frozen_epochs", "unfreeze_top_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate}")

    @property
    def enabled(self) -> bool:
        """Whether the run trains in two phases."""
        return self.frozen_epochs > 0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, callbacks, precision and distribution."""

    epochs: int = 10
    batch_size: int = 32
    optimizer: OptimizerName = "adam"
    learning_rate: float = 1e-3
    lr_schedule: LrSchedule = "constant"
    precision: Precision = "float32"
    distribute: DistributeStrategy = "none"
    early_stopping_patience: int = 3
    monitor: MonitorMetric = "val_loss"
    seed: int = 42
    tensorboard: bool = False
    verbose: int = 2  # Keras fit verbosity: 2 prints one line per epoch
    augment: tuple[AugmentName, ...] = ()  # training-only augmentations (docs/filters.md); empty: off
    augment_rotation_degrees: float = 15.0  # rotation: angle drawn from [-d, d]
    augment_min_scale: float = 0.8  # crop_resize and downscale: side scale drawn from [s, 1]
    augment_noise_sigma: float = 4.0  # noise: Gaussian sigma in 0-255 pixel units
    augment_color_strength: float = 0.2  # color_jitter: brightness/contrast/saturation strength
    augment_jpeg_min_quality: int = 60  # jpeg: quality drawn from [q, 100]
    degrade: DegradeConfig = field(default_factory=DegradeConfig)  # blur/JPEG/downscale/crop copies
    # Monitor (early stopping, checkpoints) the validation split plus one degraded copy of each
    # image, drawn once with a fixed seed; metrics.json's validation metrics stay on the clean split.
    validation_degraded: bool = False
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)  # backbone frozen, then unfrozen

    def __post_init__(self) -> None:
        if self.fine_tune.enabled and self.fine_tune.frozen_epochs >= self.epochs:
            raise ValueError(
                "fine_tune.frozen_epochs must be less than epochs: phase 2 needs at least one epoch. "
                f"Received: frozen_epochs={self.fine_tune.frozen_epochs}, epochs={self.epochs}"
            )

    def fine_tune_learning_rate(self) -> float:
        """Phase 2's learning rate: ``fine_tune.learning_rate``, or a tenth of ``learning_rate``."""
        if self.fine_tune.learning_rate is not None:
            return self.fine_tune.learning_rate
        return self.learning_rate / 10


@dataclass(frozen=True)
class ClassicalConfig:
    """How the scikit-learn baselines (``model.name`` logistic_pixels, cooccurrence_logistic,
    backbone_svm) are fitted.

    Each fits once on a seeded, class-balanced sample of at most ``max_train_images`` clean training
    images (no ``train.augment`` or ``train.degrade``); an RBF SVC's fit time and kernel memory grow
    with the square of that number. A grid of more than one candidate is searched by
    ``GridSearchCV`` with ``cv_folds`` stratified, seeded folds on accuracy, then refitted on the
    whole sample. See :mod:`aiclassify.classical`.
    """

    max_train_images: int = 5000
    cv_folds: int = 3
    logistic_c: tuple[float, ...] = (1.0,)  # inverse L2 strength of LogisticRegression
    logistic_max_iter: int = 1000
    svm_c: tuple[float, ...] = (1.0, 10.0)
    # RBF gamma as multiples of scikit-learn's gamma="scale", 1 / (n_features * X.var()), on the
    # standardised features: the same grid suits every backbone's feature width.
    svm_gamma: tuple[float, ...] = (0.5, 1.0, 2.0)

    def __post_init__(self) -> None:
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be at least 2. Received: cv_folds={self.cv_folds}")
        if self.max_train_images < 2 * self.cv_folds:
            raise ValueError(
                "max_train_images must leave every fold an image of each class (at least 2 * cv_folds). "
                f"Received: max_train_images={self.max_train_images}"
            )
        if self.logistic_max_iter < 1:
            raise ValueError(
                f"logistic_max_iter must be at least 1. Received: logistic_max_iter={self.logistic_max_iter}"
            )
        for name in ("logistic_c", "svm_c", "svm_gamma"):
            grid = getattr(self, name)
            if not grid or any(value <= 0 for value in grid):
                raise ValueError(
                    f"{name} must be a non-empty list of positive numbers. Received: {name}={list(grid)}"
                )


@dataclass(frozen=True)
class ExportConfig:
    """What is exported at the end of a run."""

    saved_model: bool = True
    threshold: float = 0.5


@dataclass(frozen=True)
class Config:
    """The whole configuration of one training run."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """Return the config file for a path, or for a bare name looked up in ``configs/``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    directories = (Path.cwd() / "configs", CONFIG_DIR)
    candidates = [d / n for d in directories for n in (path, Path(f"{path}.yaml"))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    available = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"Config file not found: {name_or_path}. Shipped configs: {available}")


def load_config(name_or_path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Load defaults, then a YAML file of overrides, then ``key.sub=value`` overrides."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        source = str(path)
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping, got {type(loaded).__name__}")
        tree = loaded
        tree.setdefault("name", path.stem)
    for override in overrides:
        _apply_override(tree, override)
    return from_dict(Config, tree, source)


def _apply_override(tree: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Override must look like section.key=value. Received: {override!r}")
    *parents, leaf = key.strip().split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Cannot override {key!r}: {part!r} is not a section")
    node[leaf] = yaml.safe_load(raw) if raw.strip() else ""


def from_dict(schema: type, values: dict[str, Any], source: str, prefix: str = "") -> Any:
    """Build the dataclass ``schema`` from ``values``, rejecting unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or 'top level'}' must be a mapping")
    hints = typing.get_type_hints(schema)
    names = {f.name for f in dataclasses.fields(schema)}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: unknown key '{dotted}'.{hint} Valid keys here: {sorted(names)}")
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            kwargs[key] = from_dict(expected, value, source, f"{dotted}.")
        else:
            kwargs[key] = _check_type(value, expected, dotted, source)
    try:
        return schema(**kwargs)
    except ValueError as error:  # a range check in the section's __post_init__
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{source}: in '{prefix.rstrip('.') or 'top level'}': {error}") from None


def _check_type(value: Any, expected: Any, dotted: str, source: str) -> Any:
    if typing.get_origin(expected) is tuple:  # tuple[X, ...]: a YAML list, stored as a hashable tuple
        (item_type, _) = typing.get_args(expected)
        if not isinstance(value, list | tuple):
            raise ConfigError(
                f"{source}: '{dotted}' must be a list of {_describe(item_type)}. "
                f"Received: {value!r} ({type(value).__name__})"
            )
        return tuple(_check_type(item, item_type, f"{dotted}[{i}]", source) for i, item in enumerate(value))
    if typing.get_origin(expected) is Literal:
        return _check_choice(value, typing.get_args(expected), dotted, source)
    allowed = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    for kind in allowed:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, bool):
            continue
        if isinstance(value, kind):
            return value
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise ConfigError(f"{source}: '{dotted}' must be {names}. Received: {value!r} ({type(value).__name__})")


def _check_choice(value: Any, choices: tuple[str, ...], dotted: str, source: str) -> str:
    if isinstance(value, str) and value in choices:
        return value
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    kind = "" if isinstance(value, str) else f" ({type(value).__name__})"
    raise ConfigError(f"{source}: '{dotted}' must be one of {list(choices)}.{hint} Received: {value!r}{kind}")


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return f"values from {list(typing.get_args(kind))}"
    return kind.__name__


def to_dict(config: Config) -> dict[str, Any]:
    """The resolved configuration as plain data (tuples become lists, as YAML reads them back)."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def save_config(config: Config, path: Path) -> None:
    """Write the fully resolved configuration as YAML."""
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
