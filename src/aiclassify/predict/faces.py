"""The face path: every face of a photo scored by the face model, beside the verdict on the whole image.

A :class:`FacePath` pairs a :class:`~aiclassify.faces.FaceFinder` with the face model's
:class:`~aiclassify.predict.Predictor`. :meth:`FacePath.search` finds and crops the faces of one
encoded image (never raising: a detector failure becomes the ``face_detection_failed`` warning and
no face list), :meth:`FacePath.verdicts` turns the face model's raw scores of the crops into a
:class:`FaceVerdict` each; :meth:`FacePath.score` does both for a batch of images through the
predictor. The API does the same two steps around its batching queue, so the predict command, the
API and evaluation give the same answers.

Face scores are separate lines: they never change the whole-image verdict, and the whole-image
verdict never changes theirs.

Warning codes added here (each ``{code, message}``, as in :mod:`aiclassify.predict.diagnostics`):

- ``no_face`` (on the image): the face model was asked for (``model=faces``) and no face was found;
  its score of the whole image is then a face model's score of something that is not a face;
- ``face_detection_failed`` (on the image): the detector failed on it; no face was scored;
- ``small_face`` (on a face): the face is under half a training image's size in the photo, so its
  crop was enlarged more than :data:`MAX_ENLARGEMENT` times and lacks the fine detail the model
  relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiclassify.faces.finder import FaceCrop, FaceFinder
from aiclassify.predict.diagnostics import ImageWarning
from aiclassify.predict.predictor import Predictor, Verdict

logger = logging.getLogger(__name__)

MAX_ENLARGEMENT = 2.0
FACE_WARNING_CODES = ("no_face", "face_detection_failed", "small_face")

NO_FACE = ImageWarning(
    "no_face",
    "no face was found: the face model judges face photos, and its score of this image is not "
    "a judgement of a face",
)


def detection_failed(why: BaseException | str) -> ImageWarning:
    """The ``face_detection_failed`` warning, saying ``why`` (an error, or words)."""
    return ImageWarning(
        "face_detection_failed", f"face detection failed on this image, so no face was scored ({why})"
    )


def small_face(enlargement: float) -> ImageWarning:
    """The ``small_face`` warning for a crop enlarged ``enlargement`` times."""
    return ImageWarning(
        "small_face",
        f"the face is small in the photo: its crop was enlarged {enlargement:.1f} times to the "
        "training images' size, so the fine detail the model relies on is missing",
    )


@dataclass(frozen=True)
class FaceSearch:
    """The faces of one image (``crops``: None when the search failed) and the warnings it gives
    the image (``no_face``, ``face_detection_failed``)."""

    crops: tuple[FaceCrop, ...] | None
    warnings: tuple[ImageWarning, ...] = ()


@dataclass(frozen=True)
class FaceVerdict:
    """The face model's verdict on one face: its place in the photo, left to right (``index``),
    the detector's box and confidence, and the :class:`~aiclassify.predict.Verdict` on its crop."""

    index: int
    crop: FaceCrop
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        """The face as the API and ``predict --json`` report it."""
        face, verdict = self.crop.face, self.verdict
        return {
            "index": self.index,
            "box": list(face.box),
            "detector_confidence": face.detector_confidence,
            "landmarks": {name: [round(x, 2), round(y, 2)] for name, (x, y) in vars(face.landmarks).items()},
            "verdict": verdict.verdict,
            "label": verdict.label,
            "probability_ai": verdict.probability_ai,
            "probability_ai_uncalibrated": verdict.probability_ai_uncalibrated,
            "threshold": verdict.threshold,
            "operating_point": verdict.operating_point,
            "band": None if verdict.band is None else verdict.band.to_dict(),
            "warnings": [warning.to_dict() for warning in verdict.warnings],
        }


class FacePath:
    """Faces found by ``finder``, scored by ``predictor`` (the face model; see the module)."""

    def __init__(self, finder: FaceFinder, predictor: Predictor) -> None:
        self.finder = finder
        self.predictor = predictor

    def search(self, image: bytes, expect_faces: bool = False) -> FaceSearch:
        """The faces of one encoded image; ``expect_faces``: warn ``no_face`` when there are none
        (the face model scores the whole image too). Never raises."""
        try:
            crops = tuple(self.finder.find(image))
        except Exception as error:
            logger.warning("Face detection failed: %s: %s", type(error).__name__, error)
            return FaceSearch(None, (detection_failed(error),))
        return FaceSearch(crops, (NO_FACE,) if expect_faces and not crops else ())

    def verdicts(
        self,
        search: FaceSearch,
        raw_probabilities: Sequence[float],
        threshold: float,
        operating_point: str | None,
    ) -> tuple[FaceVerdict, ...] | None:
        """A :class:`FaceVerdict` per crop of ``search`` from the face model's raw outputs on the
        crops, in order, at ``threshold`` (from the face predictor's ``threshold_for``)."""
        if search.crops is None:
            return None
        verdicts = []
        for index, (crop, raw) in enumerate(zip(search.crops, raw_probabilities, strict=True)):
            warnings = self.predictor.image_warnings(crop.image)
            if crop.enlargement > MAX_ENLARGEMENT:
                warnings = (small_face(crop.enlargement), *warnings)
            verdicts.append(
                FaceVerdict(index, crop, self.predictor.verdict(raw, threshold, operating_point, warnings))
            )
        return tuple(verdicts)

    def score(
        self,
        images: Sequence[bytes],
        target_fpr: float | None = None,
        operating_point: str | None = None,
        expect_faces: bool = False,
    ) -> list[tuple[FaceSearch, tuple[FaceVerdict, ...] | None]]:
        """Each image's search and face verdicts, every crop of all images scored through the face
        predictor together."""
        threshold, point = self.predictor.threshold_for(target_fpr, operating_point)
        searches = [self.search(image, expect_faces) for image in images]
        crops = [crop.image for search in searches for crop in search.crops or ()]
        scores = list(self.predictor.probabilities(crops))
        results = []
        for search in searches:
            count = len(search.crops or ())
            mine, scores = scores[:count], scores[count:]
            results.append((search, self.verdicts(search, mine, threshold, point)))
        return results
