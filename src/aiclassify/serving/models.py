"""The served models: loading from run directories or SavedModel paths, calibration, thresholds.

A :class:`ServedModel` wraps a predictor (``aiclassify.predict.Predictor`` or anything with
``probabilities(list[bytes]) -> list[float]`` and a ``metadata`` dict), its batching queue and
what ``metadata.json`` says about calibration (``calibration.temperature``) and operating points
(thresholds on the calibrated probability ``sigmoid(logit(p) / temperature)``).
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from aiclassify import LABEL_NAMES
from aiclassify.evaluation.calibration import apply_temperature, read_temperature
from aiclassify.serving.batching import BatchQueue
from aiclassify.serving.errors import ApiError

logger = logging.getLogger("aiclassify.serving.models")

LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"  # TensorFlow Serving's state names


@dataclass(frozen=True)
class OperatingPoint:
    """A stored threshold on the calibrated probability, chosen for a target false-positive rate."""

    name: str
    target_fpr: float | None
    threshold: float


def load_predictor(path: str | Path) -> Any:
    """A predictor for a run directory (``metadata.json`` + ``saved_model/``) or a SavedModel path."""
    from aiclassify.predict import Predictor
    from aiclassify.runs import METADATA_FILE, SAVED_MODEL_DIR

    path = Path(path)
    if (path / METADATA_FILE).is_file() and (path / SAVED_MODEL_DIR).is_dir():
        return Predictor(path)
    if (path / "saved_model.pb").is_file():
        return SavedModelPredictor(path)
    raise FileNotFoundError(f"{path} is neither a run directory nor a SavedModel")


class SavedModelPredictor:
    """A bare SavedModel: metadata from the run directory around it when there is one."""

    def __init__(self, path: Path):
        from aiclassify.export import BYTES_SIGNATURE, load_saved_model
        from aiclassify.runs import METADATA_FILE, read_json

        self.path = Path(path)
        parent_metadata = self.path.parent / METADATA_FILE
        self.metadata = read_json(parent_metadata) if parent_metadata.is_file() else {}
        self.threshold = float(self.metadata.get("threshold", 0.5))
        self._serve = load_saved_model(self.path).signatures[BYTES_SIGNATURE]

    def probabilities(self, images: list[bytes]) -> list[float]:
        """P(AI-generated) for each encoded image."""
        import tensorflow as tf

        from aiclassify.export import OUTPUT_KEY

        output = self._serve(image_bytes=tf.constant(images, dtype=tf.string))
        return [float(p) for p in output[OUTPUT_KEY].numpy()]


def warmup_image() -> bytes:
    """A tiny grey PNG that every model can decode."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def model_version(metadata: dict[str, Any], path: str | None) -> str:
    """A TensorFlow Serving-style integer version: a numeric SavedModel folder, else creation time."""
    if path and Path(path).name.isdigit():
        return Path(path).name
    created = metadata.get("created")
    if isinstance(created, str):
        try:
            return str(int(datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z").timestamp()))
        except ValueError:
            pass
    return "1"


def read_operating_points(metadata: dict[str, Any]) -> tuple[OperatingPoint, ...]:
    """The stored operating points; one without a finite threshold is left out with a warning.

    Thresholds are kept exactly as stored: one just above 1 (evaluation's "flag nothing" point)
    is legitimate.
    """
    points = []
    for entry in metadata.get("operating_points") or []:
        threshold = float(entry["threshold"])
        if not math.isfinite(threshold):
            logger.warning("Ignoring operating point %r: threshold %s", entry.get("name"), threshold)
            continue
        target = entry.get("target_fpr")
        target = None if target is None else float(target)
        points.append(OperatingPoint(str(entry["name"]), target, threshold))
    return tuple(points)


def calibrate(probability: float, temperature: float) -> float:
    """``sigmoid(logit(p) / temperature)``; the raw probability when the run is not calibrated."""
    if temperature == 1.0:
        return float(probability)
    return float(apply_temperature(probability, temperature))


class ServedModel:
    """One named model: its predictor, state, calibration, thresholds and batching queue."""

    def __init__(self, name: str, source: str | None = None, predictor: Any = None):
        self.name = name
        self.source = source
        self.predictor = predictor
        self.state = LOADING
        self.error = ""
        self.metadata: dict[str, Any] = {}
        self.version = "1"
        self.temperature = 1.0
        self.default_threshold = 0.5
        self.operating_points: tuple[OperatingPoint, ...] = ()
        self.batcher: BatchQueue | None = None
        self._explainer: Any = None

    def load(self, max_batch_size: int = 32, max_wait_s: float = 0.005) -> None:
        """Load (unless injected), read the metadata, answer a warm-up call, start batching."""
        started = time.perf_counter()
        try:
            if self.predictor is None:
                self.predictor = load_predictor(self.source)
            self._read_metadata()
            probability = float(self.predictor.probabilities([warmup_image()])[0])
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"warm-up call returned {probability}, not a probability")
            self.batcher = BatchQueue(self.predictor.probabilities, max_batch_size, max_wait_s, self.name)
        except Exception as error:
            self.state, self.error = END, f"{type(error).__name__}: {error}"
            logger.exception("Model %s (%s) failed to load", self.name, self.source)
            return
        self.state = AVAILABLE
        logger.info(
            "Model %s version %s loaded from %s in %.1f s",
            self.name,
            self.version,
            self.source,
            time.perf_counter() - started,
        )

    def _read_metadata(self) -> None:
        """Version, temperature, default threshold and operating points from the metadata."""
        self.metadata = dict(getattr(self.predictor, "metadata", None) or {})
        self.version = model_version(self.metadata, self.source)
        self.temperature = read_temperature(self.metadata)
        raw_threshold = float(getattr(self.predictor, "threshold", self.metadata.get("threshold", 0.5)))
        self.default_threshold = calibrate(raw_threshold, self.temperature)  # same decisions as before
        self.operating_points = read_operating_points(self.metadata)

    def calibrate(self, probability: float) -> float:
        """The calibrated probability of a raw model output."""
        return calibrate(probability, self.temperature)

    def threshold_for(
        self, target_fpr: float | None = None, operating_point: str | None = None
    ) -> tuple[float, str | None]:
        """The threshold to apply and the operating point's name (None: the default threshold)."""
        if target_fpr is None and operating_point is None:
            return self.default_threshold, None
        if not self.operating_points:
            raise ApiError(
                422,
                f"model {self.name!r} has no stored operating points (it has not been evaluated); "
                "omit target_fpr/operating_point to use its default threshold",
            )
        for point in self.operating_points:
            if operating_point is not None and point.name == operating_point:
                return point.threshold, point.name
            if (
                target_fpr is not None
                and point.target_fpr is not None
                and math.isclose(point.target_fpr, target_fpr, rel_tol=1e-6, abs_tol=1e-12)
            ):
                return point.threshold, point.name
        asked = f"operating_point={operating_point}" if operating_point else f"target_fpr={target_fpr}"
        available = ", ".join(f"{p.name} (target_fpr={p.target_fpr})" for p in self.operating_points)
        raise ApiError(422, f"model {self.name!r} has no operating point for {asked}; available: {available}")

    @staticmethod
    def label(probability: float, threshold: float) -> str:
        """The label of a (calibrated) probability at ``threshold``."""
        return LABEL_NAMES[int(probability >= threshold)]

    def score(self, images: list[bytes], timeout_s: float) -> list[float | Exception]:
        """Raw model probabilities through the batching queue; an input that failed gets its error."""
        if self.state != AVAILABLE or self.batcher is None:
            raise ApiError(503, f"model {self.name!r} is not loaded ({self.state.lower()})")
        futures = [self.batcher.submit(image) for image in images]
        deadline = time.monotonic() + timeout_s
        results: list[float | Exception] = []
        for future in futures:
            try:
                results.append(float(future.result(timeout=max(0.0, deadline - time.monotonic()))))
            except FutureTimeout:
                raise ApiError(503, f"model {self.name!r} did not answer within {timeout_s:g} s") from None
            except Exception as error:
                results.append(error)
        return results

    def explain(self, image: bytes) -> dict[str, Any]:
        """A Grad-CAM explanation of one image (``model.keras`` loaded on first use); 422 without one."""
        from aiclassify.serving.explanations import Explainer

        if self._explainer is None:
            size = self.metadata.get("image_size")
            self._explainer = Explainer(self.name, self.source, None if size is None else int(size))
        return self._explainer.explain(image)

    def describe(self) -> dict[str, Any]:
        """Name, version and what the run's metadata says about the model and its training data."""
        dataset = self.metadata.get("dataset") or {}
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "run": self.metadata.get("name"),
            "architecture": self.metadata.get("model"),
            "image_size": self.metadata.get("image_size"),
            "classes": self.metadata.get("classes", dict(enumerate(LABEL_NAMES))),
            "temperature": self.temperature,
            "threshold": self.default_threshold,
            "operating_points": [
                {"name": p.name, "target_fpr": p.target_fpr, "threshold": p.threshold}
                for p in self.operating_points
            ],
            "dataset": {key: dataset.get(key) for key in ("source", "key", "counts")},
            "metrics": self.metadata.get("metrics"),
        }

    def close(self) -> None:
        """Stop the batching worker."""
        if self.batcher is not None:
            self.batcher.close()


class ModelRegistry:
    """All configured models, loaded in order (optionally in a background thread)."""

    def __init__(self, models: list[ServedModel], default_name: str):
        self.models = {model.name: model for model in models}
        self.default_name = default_name
        self._loaded = threading.Event()

    def start(self, background: bool, max_batch_size: int, max_wait_s: float) -> None:
        """Load every model, in a daemon thread when ``background``."""

        def load_all() -> None:
            try:
                for model in self.models.values():
                    model.load(max_batch_size, max_wait_s)
            finally:
                self._loaded.set()

        if background:
            threading.Thread(target=load_all, name="model-loader", daemon=True).start()
        else:
            load_all()

    def wait_until_loaded(self, timeout: float | None = None) -> bool:
        """Whether loading finished (successfully or not) within ``timeout`` seconds."""
        return self._loaded.wait(timeout)

    def ready(self) -> bool:
        """Whether every model is loaded and answered its warm-up call."""
        return bool(self.models) and all(m.state == AVAILABLE for m in self.models.values())

    def find(self, name: str | None) -> ServedModel:
        """The model called ``name`` (default model when empty), whatever its state; 404 if unknown."""
        name = name or self.default_name
        if name not in self.models:
            known = ", ".join(self.models) or "none"
            raise ApiError(404, f"unknown model {name!r}; this server has: {known}")
        return self.models[name]

    def get(self, name: str | None) -> ServedModel:
        """The model called ``name``, ready to score: 404 when unknown, 503 when not loaded."""
        model = self.find(name)
        if model.state != AVAILABLE:
            detail = f": {model.error}" if model.error else ""
            raise ApiError(503, f"model {model.name!r} is not loaded ({model.state.lower()}){detail}")
        return model

    def close(self) -> None:
        """Stop every batching worker."""
        for model in self.models.values():
            model.close()
