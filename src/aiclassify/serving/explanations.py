"""Grad-CAM explanations for ``/predict?explain=true``.

The served SavedModel has no per-layer gradients, so an :class:`Explainer` loads the run
directory's ``model.keras`` the first time an explanation is asked for, and computes Grad-CAM
(:mod:`aiclassify.explain`) on the same bytes the model scored, one image at a time.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

from aiclassify.serving.errors import ApiError

METHOD = "grad-cam"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(name: str, text: str | None) -> bool:
    """A boolean request parameter (true/false, 1/0, yes/no, on/off; absent is false); else 400."""
    if text is None:
        return False
    word = text.strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise ApiError(400, f"{name} must be true or false, not {text!r}")


class Explainer:
    """Grad-CAM for one served model, from ``model.keras`` in its run directory (loaded lazily)."""

    def __init__(self, model_name: str, source: str | None, image_size: int | None):
        self.model_name = model_name
        self.source = source
        self.image_size = image_size
        self._keras_model: Any = None
        self._lock = threading.Lock()

    def _path(self) -> Path:
        """``model.keras`` of the run directory; 422 when the model was not served from one."""
        from aiclassify.runs import METADATA_FILE, MODEL_FILE

        run = Path(self.source) if self.source else None
        if (
            run is None
            or self.image_size is None
            or not (run / METADATA_FILE).is_file()
            or not (run / MODEL_FILE).is_file()
        ):
            raise ApiError(
                422,
                f"model {self.model_name!r} cannot explain its predictions: explanations need "
                f"the model served from a run directory with {MODEL_FILE}",
            )
        return run / MODEL_FILE

    def explain(self, image_bytes: bytes) -> dict[str, Any]:
        """``{"method", "layer", "overlay_png_b64"}`` for one image the model decodes."""
        from aiclassify.explain import grad_cam_and_probability, overlay_png

        with self._lock:
            if self._keras_model is None:
                from aiclassify.models import load_keras_model

                self._keras_model = load_keras_model(self._path())
            heatmap, _, layer = grad_cam_and_probability(self._keras_model, image_bytes, self.image_size)
        overlay = overlay_png(image_bytes, heatmap)
        return {"method": METHOD, "layer": layer, "overlay_png_b64": base64.b64encode(overlay).decode()}
