"""Grad-CAM explanations for ``/predict?explain=true``.

The served SavedModel has no per-layer gradients, so an :class:`Explainer` computes Grad-CAM
(:mod:`aiclassify.explain`) with the predictor's Keras model (``model.keras`` of its run, loaded on
first use) on the same bytes the model scored, one image at a time.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from aiclassify.explain import grad_cam_and_probability, overlay_png
from aiclassify.predict import Predictor

METHOD = "grad-cam"


class Explainer:
    """Grad-CAM for one served model, one image at a time."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self._lock = threading.Lock()

    def explain(self, image_bytes: bytes) -> dict[str, Any]:
        """``{"method", "layer", "overlay_png_b64"}`` for one image the model decodes.

        Raises :class:`~aiclassify.predict.ExplanationUnavailableError` when the model has no
        ``model.keras`` to compute gradients with.
        """
        with self._lock:
            keras_model = self.predictor.keras_model()
            heatmap, _, layer = grad_cam_and_probability(keras_model, image_bytes, self.predictor.image_size)
        overlay = overlay_png(image_bytes, heatmap)
        return {"method": METHOD, "layer": layer, "overlay_png_b64": base64.b64encode(overlay).decode()}
