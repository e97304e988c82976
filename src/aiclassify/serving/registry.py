"""The served models: each a :class:`~aiclassify.predict.Predictor` behind a batching queue.

A :class:`ServedModel` loads its predictor (``Predictor.load``) unless one was injected, checks it
with a warm-up call and then scores images through its :class:`~.batching.BatchQueue`: each
image is prepared (decoded into model input) in the caller's thread, and only prepared inputs
are queued, so the batch's worker does nothing but run the model.
Calibration, thresholds and labels are the predictor's; this module only turns its errors into
HTTP statuses. The :class:`ModelRegistry` holds every configured model and loads them in order.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from aiclassify import LABEL_NAMES
from aiclassify.evidence import Evidence
from aiclassify.predict import (
    ExplanationUnavailableError,
    ImageWarning,
    Predictor,
    UnknownOperatingPointError,
    Verdict,
)
from aiclassify.serving.batching import BatchQueue
from aiclassify.serving.decode_budget import DecodeClock
from aiclassify.serving.errors import ApiError, quoted, shorten
from aiclassify.serving.explanations import Explainer

logger = logging.getLogger("aiclassify.serving.registry")

LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"  # TensorFlow Serving's state names


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


class ServedModel:
    """One named model: its predictor, loading state, version and batching queue."""

    def __init__(self, name: str, source: str | None = None, predictor: Predictor | None = None):
        self.name = name
        self.source = source
        self.predictor = predictor
        self.state = LOADING
        self.error = ""
        self.version = "1"
        self.batcher: BatchQueue | None = None
        self._explainer: Explainer | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """Training's metadata of the run (empty until loaded)."""
        return self.predictor.metadata if self.predictor is not None else {}

    @property
    def temperature(self) -> float:
        """The calibration temperature (1: not calibrated)."""
        return self.predictor.temperature if self.predictor is not None else 1.0

    @property
    def is_demo(self) -> bool:
        """Whether the model is a demo model (trained on synthetic toy images)."""
        return self.predictor.is_demo if self.predictor is not None else False

    def load(
        self,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        """Load (unless injected), answer a warm-up call, start batching; on failure the state is END.

        ``on_batch(model name, batch size)`` is called for every batch scored (for ``/metrics``)."""
        started = time.perf_counter()
        try:
            if self.predictor is None:
                self.predictor = Predictor.load(self.source)
            self.version = model_version(self.predictor.metadata, self.source or self.predictor.source)
            probability = float(self.predictor.probabilities([warmup_image()])[0])
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"warm-up call returned {probability}, not a probability")
            report = None if on_batch is None else functools.partial(on_batch, self.name)
            self.batcher = BatchQueue(
                self.predictor.score_prepared, max_batch_size, max_wait_s, self.name, on_batch=report
            )
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

    def threshold_for(
        self, target_fpr: float | None = None, operating_point: str | None = None
    ) -> tuple[float, str | None]:
        """The threshold to apply and its operating point's name; 422 when the model has no such point."""
        try:
            return self.predictor.threshold_for(target_fpr, operating_point)
        except UnknownOperatingPointError as error:
            message = error.describe(None if error.asked is None else shorten(error.asked))
            raise ApiError(422, f"model {self.name!r}: {message}", reason="no_operating_point") from None

    def verdict(
        self,
        raw_probability: float,
        threshold: float,
        operating_point: str | None,
        warnings: tuple[ImageWarning, ...] = (),
        evidence: Evidence | None = None,
    ) -> Verdict:
        """The predictor's verdict on one raw model output (label, band verdict, warnings), with the
        image's metadata evidence carried beside it."""
        return self.predictor.verdict(raw_probability, threshold, operating_point, warnings, evidence)

    def evidence(self, image: bytes) -> Evidence:
        """The predictor's metadata evidence for one uploaded image (offline, bounded, never raises)."""
        return Predictor.evidence(image) if self.predictor is None else self.predictor.evidence(image)

    def image_warnings(self, image: bytes | Image.Image) -> tuple[ImageWarning, ...]:
        """The predictor's warnings for one uploaded image, its bytes or as Pillow decoded them
        (Pillow only, never raises)."""
        return self.predictor.image_warnings(image)

    def prepare(self, image: bytes) -> Any:
        """The model's input for one uploaded image (:meth:`~aiclassify.predict.Predictor.prepare`),
        decoded in the caller's thread, outside the batch; raises the decoder's error (TensorFlow's
        InvalidArgumentError) on an image it cannot decode."""
        if self.state != AVAILABLE or self.predictor is None:
            raise ApiError(
                503, f"model {self.name!r} is not loaded ({self.state.lower()})", reason="model_not_loaded"
            )
        return self.predictor.prepare([image])[0]

    def score(self, inputs: list[Any], timeout_s: float) -> list[float | Exception]:
        """Raw model probabilities of prepared inputs (:meth:`prepare`) through the batching queue; an
        input that failed gets its error. On a timeout (503) the request's inputs still queued are
        cancelled: the worker skips them."""
        if self.state != AVAILABLE or self.batcher is None:
            raise ApiError(
                503, f"model {self.name!r} is not loaded ({self.state.lower()})", reason="model_not_loaded"
            )
        futures = [self.batcher.submit(item) for item in inputs]
        deadline = time.monotonic() + timeout_s
        results: list[float | Exception] = []
        for future in futures:
            try:
                results.append(float(future.result(timeout=max(0.0, deadline - time.monotonic()))))
            except FutureTimeout:
                for pending in futures:
                    pending.cancel()
                raise ApiError(
                    503, f"model {self.name!r} did not answer within {timeout_s:g} s", reason="model_timeout"
                ) from None
            except Exception as error:
                results.append(error)
        return results

    def explain(
        self, image: bytes, max_side: int | None = None, clock: DecodeClock | None = None
    ) -> dict[str, Any]:
        """A Grad-CAM explanation of one image, its overlay at most ``max_side`` pixels a side, its
        decodes within the request's decode budget ``clock`` (:meth:`Explainer.explain`); 422 when
        the model cannot explain."""
        if self._explainer is None:
            self._explainer = Explainer(self.predictor)
        try:
            return self._explainer.explain(image, max_side, clock)
        except ExplanationUnavailableError as error:
            message = f"model {self.name!r} cannot explain its predictions: {error}"
            raise ApiError(422, message, reason="cannot_explain") from None

    def describe(self) -> dict[str, Any]:
        """Name, version, what the run's metadata says, and the thresholds in use (with their file)."""
        metadata = self.metadata
        dataset = metadata.get("dataset") or {}
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "run": metadata.get("name"),
            "architecture": metadata.get("model"),
            "image_size": self.predictor.image_size,
            "classes": metadata.get("classes", dict(enumerate(LABEL_NAMES))),
            **self.predictor.describe_thresholds(),
            "demo": self.is_demo,
            "dataset": {key: dataset.get(key) for key in ("source", "key", "counts")},
            "metrics": metadata.get("metrics"),
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

    def start(
        self,
        background: bool,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[str, int], None] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Load every model, in a daemon thread when ``background``; ``on_batch`` as in
        :meth:`ServedModel.load`; ``then`` is called in the same thread after the models (the face
        detector's load), before loading counts as finished."""

        def load_all() -> None:
            try:
                for model in self.models.values():
                    model.load(max_batch_size, max_wait_s, on_batch)
                if then is not None:
                    then()
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
            message = f"unknown model {quoted(name)}; this server has: {known}"
            raise ApiError(404, message, reason="unknown_model")
        return self.models[name]

    def get(self, name: str | None) -> ServedModel:
        """The model called ``name``, ready to score: 404 when unknown, 503 when not loaded."""
        model = self.find(name)
        if model.state != AVAILABLE:
            detail = f": {model.error}" if model.error else ""
            message = f"model {model.name!r} is not loaded ({model.state.lower()}){detail}"
            raise ApiError(503, message, reason="model_not_loaded")
        return model

    def close(self) -> None:
        """Stop every batching worker."""
        for model in self.models.values():
            model.close()
