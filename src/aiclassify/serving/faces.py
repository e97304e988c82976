"""The server's face path: its face detector, ``model=auto``, and the faces of each scored upload.

A :class:`FaceService` holds the face detector (MTCNN, :class:`~aiclassify.faces.FaceDetector`),
loaded at start-up after the models, in the same loading thread, and part of ``/readyz``. It is
enabled when the server serves its face model (``AICLASSIFY_FACE_MODEL``, default ``faces``) and
``AICLASSIFY_FACE_DETECTION`` is on; its limits are settings (``AICLASSIFY_MAX_FACES``,
``AICLASSIFY_MIN_FACE_SIZE``, ``AICLASSIFY_MIN_FACE_CONFIDENCE``, ``AICLASSIFY_MAX_FACE_SEARCH_SIDE``),
and at most ``AICLASSIFY_MAX_CONCURRENT_FACE_SEARCHES`` images are searched at once: searches are
CPU-bound and not batched, so more at once only slows each (an image that waits
``AICLASSIFY_FACE_SEARCH_WAIT_S`` for a turn is not searched, and is warned so).

:meth:`FaceService.route` decides which models answer a request: ``model=auto`` scores the whole
image with the general model (``AICLASSIFY_GENERAL_MODEL``) and every face with the face model;
``model=<face model>`` scores the whole image and every face with the face model, and warns
``no_face`` on an image without one; any other model is unchanged (no face search).
:func:`score_faces` finds the faces of the already checked uploads in the request's thread and
scores their crops through the face model's batching queue, like every other input.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image

from aiclassify.faces import DEFAULT_METHOD, DEFAULT_SIZE, FaceDetector, FaceFinder
from aiclassify.predict.faces import FacePath, FaceSearch, FaceVerdict, detection_failed
from aiclassify.serving.decode_budget import DecodeClock
from aiclassify.serving.errors import ApiError
from aiclassify.serving.registry import AVAILABLE, END, LOADING, ModelRegistry, ServedModel
from aiclassify.serving.settings import ServerSettings

logger = logging.getLogger("aiclassify.serving.faces")

AUTO = "auto"
DISABLED = "DISABLED"


@dataclass(frozen=True)
class Route:
    """The models that answer one request: ``model`` scores the whole image, ``face_model`` (None: no
    face search) every face; ``expect_faces``: warn ``no_face`` when none is found."""

    model: ServedModel
    face_model: ServedModel | None = None
    expect_faces: bool = False


@dataclass(frozen=True)
class UploadFaces:
    """The faces of one upload: the search, the face verdicts (None: not searched or failed), and
    the search's time in milliseconds."""

    search: FaceSearch
    verdicts: tuple[FaceVerdict, ...] | None
    detection_ms: float


class FaceService:
    """The face detector of one app and the routing of ``model=auto`` (see the module).

    ``detector``: an already built detector (tests inject one); otherwise MTCNN is built by
    :meth:`load` from the settings' limits.
    """

    def __init__(self, settings: ServerSettings, served: set[str], detector: FaceDetector | None = None):
        self.face_model = settings.face_model
        self.general_model = settings.general_model
        self.settings = settings
        self.enabled = settings.face_detection and settings.face_model in served
        self.state = LOADING if self.enabled else DISABLED
        self.error = ""
        self.finder: FaceFinder | None = None
        self._detector = detector
        self._slots = threading.BoundedSemaphore(settings.max_concurrent_face_searches)

    def load(self) -> None:
        """Build the detector (unless injected) and check it on a blank image; END on failure."""
        if not self.enabled:
            return
        started = time.perf_counter()
        try:
            detector = self._detector or FaceDetector(
                max_faces=self.settings.max_faces,
                min_face_size=self.settings.min_face_size,
                min_confidence=self.settings.min_face_confidence,
                max_search_side=self.settings.max_face_search_side,
            )
            finder = FaceFinder(detector)
            buffer = io.BytesIO()
            Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
            finder.find(buffer.getvalue())
        except Exception as error:
            self.state, self.error = END, f"{type(error).__name__}: {error}"
            logger.exception("The face detector failed to load")
            return
        self.finder, self.state = finder, AVAILABLE
        logger.info("Face detector loaded in %.1f s", time.perf_counter() - started)

    def ready(self) -> bool:
        """Whether the detector is loaded, or not needed."""
        return self.state in (AVAILABLE, DISABLED)

    def readiness(self, show_errors: bool) -> dict[str, Any] | None:
        """The detector's part of ``/readyz`` (None when disabled)."""
        if not self.enabled:
            return None
        return {"state": self.state, "error": (self.error or None) if show_errors else None}

    def unavailable_because(self, registry: ModelRegistry) -> str | None:
        """Why ``model=auto`` cannot be used now (None: it can)."""
        missing = [name for name in (self.face_model, self.general_model) if name not in registry.models]
        if missing:
            lacking = ", ".join(map(repr, missing))
            return (
                f"model=auto needs the models {self.face_model!r} and {self.general_model!r}; "
                f"this server lacks {lacking}"
            )
        if not self.enabled:
            return "face detection is turned off on this server (AICLASSIFY_FACE_DETECTION)"
        if self.state != AVAILABLE:
            return f"the face detector is not loaded ({self.state.lower()})"
        not_loaded = [
            n for n in (self.face_model, self.general_model) if registry.models[n].state != AVAILABLE
        ]
        if not_loaded:
            return f"model {not_loaded[0]!r} is not loaded"
        return None

    def describe(self, registry: ModelRegistry) -> dict[str, Any]:
        """The ``GET /v1/faces`` answer."""
        note = self.unavailable_because(registry)
        detector = None
        if self.enabled:
            limits = {
                "max_faces": self.settings.max_faces,
                "min_face_size": self.settings.min_face_size,
                "min_confidence": self.settings.min_face_confidence,
                "max_search_side": self.settings.max_face_search_side,
                "crop": DEFAULT_METHOD,
                "crop_size": DEFAULT_SIZE,
            }
            detector = {"state": self.state, **(limits if self.finder is None else self.finder.describe())}
        return {
            "available": note is None,
            "face_model": self.face_model,
            "general_model": self.general_model,
            "detector": detector,
            "note": note,
        }

    def route(self, registry: ModelRegistry, name: str | None) -> Route:
        """The models answering a request for model ``name`` (see the module); 404 for an unknown
        model, 503 for one not loaded (or the detector, when the request needs it)."""
        name = name or registry.default_name
        if name == AUTO:
            note = self.unavailable_because(registry)
            if note is not None:
                missing = any(n not in registry.models for n in (self.face_model, self.general_model))
                status = 404 if missing or not self.enabled else 503
                raise ApiError(status, note, reason="auto_unavailable")
            return Route(registry.get(self.general_model), registry.get(self.face_model))
        model = registry.get(name)
        if name != self.face_model or not self.enabled:
            return Route(model)
        if self.state != AVAILABLE:
            message = f"the face detector is not loaded ({self.state.lower()})"
            raise ApiError(503, message, reason="face_detector_not_loaded")
        return Route(model, model, expect_faces=True)

    def _search_in_turn(self, path: FacePath, image: bytes, expect_faces: bool) -> FaceSearch:
        """``path.search`` once one of the ``max_concurrent_face_searches`` slots is free; an image
        that waits ``face_search_wait_s`` without one is not searched (``face_detection_failed``)."""
        if not self._slots.acquire(timeout=self.settings.face_search_wait_s):
            busy = (
                f"not searched: the detector was busy with {self.settings.max_concurrent_face_searches} "
                f"other search(es) for {self.settings.face_search_wait_s:g} s; retry later"
            )
            return FaceSearch(None, (detection_failed(busy),))
        try:
            return path.search(image, expect_faces)
        finally:
            self._slots.release()

    def score_faces(
        self,
        face_model: ServedModel,
        images: list[bytes],
        target_fpr: float | None,
        operating_point: str | None,
        expect_faces: bool,
        timeout_s: float,
        clock: DecodeClock,
    ) -> list[UploadFaces]:
        """The faces of each image (the checked upload's bytes), found in this thread and scored
        through ``face_model``'s batching queue; 422 when the face model lacks the operating point.

        The search decodes the image again, within the request's decode budget (``clock``, the one
        its images were prepared under): an image whose search would overrun it, reckoning that it
        costs what preparing the image did, is not searched and is warned ``face_detection_failed``.
        """
        threshold, point = face_model.threshold_for(target_fpr, operating_point)
        path = FacePath(self.finder, face_model.predictor)
        searches = []
        for index, image in enumerate(images):
            started = time.perf_counter()
            with clock.image(index):
                try:
                    clock.check(upcoming_s=clock.spent_on_current())
                except ApiError as error:
                    search = FaceSearch(None, (detection_failed(f"not searched: {error.message}"),))
                else:
                    search = self._search_in_turn(path, image, expect_faces)
            searches.append((search, (time.perf_counter() - started) * 1000))
        crops = [crop.image for search, _ in searches for crop in search.crops or ()]
        scores = face_model.score([face_model.prepare(crop) for crop in crops], timeout_s) if crops else []
        failed = next((score for score in scores if isinstance(score, Exception)), None)
        if failed is not None:
            raise failed
        results = []
        for search, detection_ms in searches:
            count = len(search.crops or ())
            mine, scores = scores[:count], scores[count:]
            results.append(UploadFaces(search, path.verdicts(search, mine, threshold, point), detection_ms))
        return results
