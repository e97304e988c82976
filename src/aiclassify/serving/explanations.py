"""Grad-CAM explanations for ``/predict?explain=true``.

The served SavedModel has no per-layer gradients, so an :class:`Explainer` computes Grad-CAM
(:mod:`aiclassify.explain`) with the predictor's Keras model (``model.keras`` of its run, loaded on
first use) on the same bytes the model scored, one image at a time. The overlay is a copy scaled
down to ``AICLASSIFY_MAX_EXPLANATION_SIDE`` pixels a side at most, and :class:`ExplanationSlots`
bounds how many requests explain at once in one app, so memory stays bounded whatever the uploads.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiclassify.explain import grad_cam_and_probability, overlay_png
from aiclassify.predict import Predictor
from aiclassify.serving.errors import ApiError

METHOD = "grad-cam"


class Explainer:
    """Grad-CAM for one served model, one image at a time."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self._lock = threading.Lock()

    def explain(self, image_bytes: bytes, max_side: int | None = None) -> dict[str, Any]:
        """``{"method", "layer", "overlay_png_b64"}`` for one image the model decodes; the overlay is
        scaled down (aspect kept) to ``max_side`` pixels a side at most when given.

        Raises :class:`~aiclassify.predict.ExplanationUnavailableError` when the model has no
        ``model.keras`` to compute gradients with.
        """
        with self._lock:
            keras_model = self.predictor.keras_model()
            heatmap, _, layer = grad_cam_and_probability(
                keras_model, image_bytes, self.predictor.image_size, max_side=max_side
            )
        overlay = overlay_png(image_bytes, heatmap)
        return {"method": METHOD, "layer": layer, "overlay_png_b64": base64.b64encode(overlay).decode()}


class ExplanationSlots:
    """At most ``limit`` requests explaining at once in one app (each explanation holds a decoded
    image); a request over the limit waits up to ``wait_s`` seconds for a slot, then gets 503."""

    def __init__(self, limit: int, wait_s: float):
        self.limit = limit
        self.wait_s = wait_s
        self._semaphore = threading.BoundedSemaphore(limit)
        self._count_lock = threading.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        """How many requests hold a slot now."""
        return self._active

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold one slot for the block; 503 ``explanations_busy`` when none frees within ``wait_s``."""
        if not self._semaphore.acquire(timeout=self.wait_s):
            raise ApiError(
                503,
                f"too many explanations in progress: this server explains {self.limit} request(s) at "
                f"a time and none finished within {self.wait_s:g} s; retry later, or ask without explain",
                reason="explanations_busy",
            )
        with self._count_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._active -= 1
            self._semaphore.release()
