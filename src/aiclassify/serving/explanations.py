"""Grad-CAM explanations for ``/predict?explain=true``.

The served SavedModel has no per-layer gradients, so an :class:`Explainer` computes Grad-CAM
(:mod:`aiclassify.explain`) with the predictor's Keras model (``model.keras`` of its run, loaded on
first use) on the same bytes the model scored, one image at a time. The overlay is a copy scaled
down to ``AICLASSIFY_MAX_EXPLANATION_SIDE`` pixels a side at most, and :class:`ExplanationSlots`
bounds how many requests explain at once in one app, so memory stays bounded whatever the uploads.

An explanation decodes the image twice more (TensorFlow for the gradients, Pillow for the overlay),
within the request's decode budget (:mod:`aiclassify.serving.decode_budget`) like its first decodes;
the gradients and the overlay's blend, on pixels already decoded, are not counted against it.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image

from aiclassify.explain import (
    blend_overlay,
    capped_size,
    grad_cam_input,
    grad_cam_of_input,
    last_conv_layer,
    overlay_base,
)
from aiclassify.predict import ExplanationUnavailableError, Predictor
from aiclassify.serving.decode_budget import BudgetedReader, DecodeClock
from aiclassify.serving.errors import ApiError
from aiclassify.serving.images import pace_decoding

METHOD = "grad-cam"


class Explainer:
    """Grad-CAM for one served model, one image at a time."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self._lock = threading.Lock()

    def explain(
        self, image_bytes: bytes, max_side: int | None = None, clock: DecodeClock | None = None
    ) -> dict[str, Any]:
        """``{"method", "layer", "overlay_png_b64"}`` for one image the model decodes; the overlay is
        scaled down (aspect kept) to ``max_side`` pixels a side at most when given.

        ``clock``: the request's decode clock, inside its ``image(...)`` block for this image (None: no
        budget). The decodes are not started when what is left of the budget is less than the image
        took so far (its check and its decode into model input); TensorFlow's decode is checked after
        it, Pillow's at every read (:func:`~aiclassify.serving.images.pace_decoding`). Raises
        :class:`~aiclassify.predict.ExplanationUnavailableError` when the model has no ``model.keras``
        to compute gradients with, or no convolutional layer to explain, before decoding anything.
        """
        clock = clock or DecodeClock(math.inf)
        with clock.paused(), self._lock:  # loading model.keras (on first use) decodes nothing
            keras_model = self.predictor.keras_model()
        try:
            layer_name = last_conv_layer(keras_model)
        except ValueError as error:  # e.g. vit_b16, or an ensemble: its convolutions are inside members
            raise ExplanationUnavailableError(
                f"explanations need a convolutional layer to compute Grad-CAM at: {error}"
            ) from None
        clock.check(upcoming_s=clock.spent_on_current())
        pixels, size = grad_cam_input(image_bytes, self.predictor.image_size)
        clock.check()
        base = _budgeted_overlay_base(image_bytes, capped_size(size[1], size[0], max_side), clock)
        with clock.paused():
            with self._lock:
                heatmap, _, layer = grad_cam_of_input(keras_model, pixels, size, layer_name, max_side)
            overlay = blend_overlay(base, heatmap)
        return {"method": METHOD, "layer": layer, "overlay_png_b64": base64.b64encode(overlay).decode()}


def _budgeted_overlay_base(image_bytes: bytes, size: tuple[int, int], clock: DecodeClock) -> Image.Image:
    """:func:`~aiclassify.explain.overlay_base` of ``size`` (width, height), decoded by Pillow through
    a reader that checks ``clock``."""
    reader = BudgetedReader(image_bytes, clock)
    with Image.open(reader) as image:
        pace_decoding(image, image_bytes, reader)
        return overlay_base(image, *size)


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
