"""Faces found in a photo by MTCNN, in the photo's own pixels.

:class:`FaceDetector` loads MTCNN (the ``mtcnn`` package: three small Keras networks whose weights
ship in its wheel) once, when it is constructed, and :meth:`FaceDetector.detect` returns the
:class:`Face` objects of one image. A photo whose longer side exceeds ``max_search_side`` is searched
on a copy shrunk to that side (box-filtered, as MTCNN builds its own image pyramid), and the boxes
and landmarks found are mapped back to the original pixels: cropping is done from the original.

The faces returned are those of detector confidence at least ``min_confidence`` whose box has a
longer side of at least ``min_face_size`` original pixels; of those, the ``max_faces`` most
confident, **ordered left to right** (by the box's left edge, then its top), the order a reader
numbers the people in a group photo. In the search copy MTCNN looks for faces down to
:data:`SEARCH_MIN_FACE` pixels, so a big photo's smallest findable face is
``max(min_face_size, SEARCH_MIN_FACE * longer side / max_search_side)`` pixels (78 px on a
4000 px photo at the default 1024).

Importing this module imports neither TensorFlow nor mtcnn; constructing a detector does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

SEARCH_MIN_FACE = 20
"""The smallest face, in pixels of the search copy, MTCNN is asked for: its own default, and the only
safe value. Smaller enlarges the search copy (slowly, for faces too small to score); larger, in
mtcnn 1.0, makes its image pyramid end below PNet's 12 px input, an error mtcnn takes for "no face",
so it finds nothing at all (min_face_size=32 finds no face in any 256 px FFHQ image). Faces under
``min_face_size`` are dropped afterwards instead."""
MTCNN_THRESHOLD_ONET = 0.8
"""MTCNN's final-stage threshold (its default), lowered to ``min_confidence`` when that is lower."""


class FaceDetectionError(RuntimeError):
    """The face detector failed on an image (the error MTCNN raised is its ``__cause__``)."""


@dataclass(frozen=True)
class Landmarks:
    """MTCNN's five facial points, ``(x, y)`` in original-image pixels. ``left`` and ``right`` are
    sides of the image, as MTCNN names them: ``left_eye`` is the eye nearer the image's left edge
    (the person's right eye in a frontal photo)."""

    left_eye: tuple[float, float]
    right_eye: tuple[float, float]
    nose: tuple[float, float]
    mouth_left: tuple[float, float]
    mouth_right: tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One face found: its box ``(x, y, width, height)`` in original-image integer pixels (clipped
    to the image), the detector's confidence (0-1) and its :class:`Landmarks`."""

    box: tuple[int, int, int, int]
    detector_confidence: float
    landmarks: Landmarks


def as_rgb_array(image: Any) -> np.ndarray:
    """``image`` (a PIL image of any mode, or an ``(height, width, 3)`` uint8 RGB array) as an RGB
    uint8 array; raises ValueError for anything else, or an image without pixels."""
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                "The image must be an RGB uint8 array of shape (height, width, 3) or a PIL image. "
                f"Received: shape={image.shape}, dtype={image.dtype}"
            )
        array = image
    else:
        raise ValueError(f"The image must be a numpy array or a PIL image. Received: {type(image).__name__}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"The image has no pixels. Received: shape={array.shape}")
    return array


def search_copy(image: np.ndarray, max_search_side: int) -> tuple[np.ndarray, float, float]:
    """The copy of ``image`` that is searched (itself when its longer side is at most
    ``max_search_side``), and the factors from its x and y back to the original's."""
    height, width = image.shape[:2]
    scale = max_search_side / max(height, width)
    if scale >= 1:
        return image, 1.0, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    return small, width / size[0], height / size[1]


class FaceDetector:
    """MTCNN, loaded once, finding the faces of one image at a time (see the module's docstring).

    Args:
        max_faces: keep at most this many faces, the most confident (default 20).
        min_face_size: drop faces whose box's longer side is under this many original pixels
            (default 32).
        min_confidence: drop faces the detector is less sure of (0-1; default 0.9).
        max_search_side: search images whose longer side is over this many pixels on a copy shrunk
            to it (default 1024).
        device: the TensorFlow device MTCNN runs on (default ``"CPU:0"``; ``"GPU:0"`` for a GPU).
    """

    def __init__(
        self,
        max_faces: int = 20,
        min_face_size: int = 32,
        min_confidence: float = 0.9,
        max_search_side: int = 1024,
        device: str = "CPU:0",
    ) -> None:
        if not isinstance(max_faces, int) or max_faces < 1:
            raise ValueError(f"max_faces must be an integer >= 1. Received: max_faces={max_faces!r}")
        if not isinstance(min_face_size, int) or min_face_size < 1:
            raise ValueError(
                f"min_face_size must be an integer >= 1. Received: min_face_size={min_face_size!r}"
            )
        if not 0 <= min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1]. Received: min_confidence={min_confidence!r}")
        if not isinstance(max_search_side, int) or max_search_side < 4 * SEARCH_MIN_FACE:
            raise ValueError(
                f"max_search_side must be an integer >= {4 * SEARCH_MIN_FACE}. "
                f"Received: max_search_side={max_search_side!r}"
            )
        from mtcnn import MTCNN

        self.max_faces = max_faces
        self.min_face_size = min_face_size
        self.min_confidence = min_confidence
        self.max_search_side = max_search_side
        self._mtcnn = MTCNN(stages="face_and_landmarks_detection", device=device)

    def detect(self, image: Any) -> list[Face]:
        """The faces in ``image`` (an RGB uint8 array or a PIL image, original pixels), ordered left
        to right; ``[]`` when there are none.

        Raises ValueError when ``image`` is not an image, :class:`FaceDetectionError` when the
        detector fails on it.
        """
        original = as_rgb_array(image)
        height, width = original.shape[:2]
        if max(height, width) < self.min_face_size:
            return []
        small, scale_x, scale_y = search_copy(original, self.max_search_side)
        try:
            rows = self._mtcnn.detect_faces(
                small,
                output_type="numpy",
                box_format="xyxy",
                min_face_size=SEARCH_MIN_FACE,
                threshold_onet=min(MTCNN_THRESHOLD_ONET, self.min_confidence),
            )
        except Exception as error:
            raise FaceDetectionError(
                f"Face detection failed on a {width}x{height} image: {type(error).__name__}: {error}"
            ) from error
        faces = [self._face(row, scale_x, scale_y, width, height) for row in np.asarray(rows)]
        faces = [
            face
            for face in faces
            if face.detector_confidence >= self.min_confidence and max(face.box[2:]) >= self.min_face_size
        ]
        faces = sorted(faces, key=lambda face: -face.detector_confidence)[: self.max_faces]
        return sorted(faces, key=lambda face: (face.box[0], face.box[1]))

    @staticmethod
    def _face(row: np.ndarray, scale_x: float, scale_y: float, width: int, height: int) -> Face:
        """One row of MTCNN's numpy output (image index, x1, y1, x2, y2, confidence, the five x then
        the five y of the landmarks, in search-copy pixels) as a :class:`Face` in original pixels
        (box edges scale as they are; a landmark at pixel ``i`` is at the centre of pixel ``i``)."""
        x1, x2 = (min(max(round(v * scale_x), 0), width) for v in (row[1], row[3]))
        y1, y2 = (min(max(round(v * scale_y), 0), height) for v in (row[2], row[4]))
        points = [
            (float((x + 0.5) * scale_x - 0.5), float((y + 0.5) * scale_y - 0.5))
            for x, y in zip(row[6:11], row[11:16], strict=True)
        ]
        return Face(
            box=(x1, y1, x2 - x1, y2 - y1), detector_confidence=float(row[5]), landmarks=Landmarks(*points)
        )
