"""From an encoded photo to its faces, each cut out as an image like the face model's training images.

:class:`FaceFinder` decodes the photo with Pillow, turned upright by its EXIF orientation (the way a
browser shows it, so boxes are in the pixels a person sees), finds its faces with a
:class:`~aiclassify.faces.detector.FaceDetector` and cuts each out of the original pixels with
:func:`~aiclassify.faces.crops.crop_face`. Each crop is handed on as a lossless PNG of
``crop_size`` pixels (the 140k training images' 256 by default): the face model then scores it
through the one inference path (:class:`~aiclassify.predict.Predictor`), exactly as it scores one
of its training images.

One finder serves every thread of a server, without a lock: MTCNN runs its three Keras networks by
calling them eagerly (no ``predict`` loop, no state kept between calls), which TensorFlow allows
from several threads at once once they are built; the server's warm-up search builds them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from aiclassify.faces.crops import (
    DEFAULT_METHOD,
    DEFAULT_SIZE,
    METHODS,
    CropMethod,
    box_quad,
    ffhq_quad,
    quad_crop,
)
from aiclassify.faces.detector import Face, FaceDetector


@dataclass(frozen=True)
class FaceCrop:
    """One face found: the :class:`Face` (box and landmarks in the upright photo's pixels), its crop
    as PNG bytes, and how many times the crop enlarged the face (``enlargement`` > 1: the face is
    smaller in the photo than in a training image)."""

    face: Face
    image: bytes
    enlargement: float


def upright_pixels(image: bytes) -> np.ndarray:
    """The RGB uint8 pixels of an encoded image, turned by its EXIF orientation; raises Pillow's
    error (an ``OSError`` or ``ValueError``) when it cannot be decoded."""
    with Image.open(io.BytesIO(image)) as opened:
        upright = ImageOps.exif_transpose(opened)
        return np.asarray(upright.convert("RGB"))


def png_bytes(pixels: np.ndarray) -> bytes:
    """``pixels`` (an RGB uint8 array) as a PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class FaceFinder:
    """Finds the faces of encoded photos and crops them for the face model (see the module).

    Args:
        detector: the loaded face detector (its limits: faces per image, smallest face, confidence).
        crop_method: ``"aligned"`` (FFHQ's alignment, the default; docs/faces.md measures it) or
            ``"box"``.
        crop_size: the crops' side in pixels (default 256, the training images').
    """

    def __init__(
        self, detector: FaceDetector, crop_method: CropMethod = DEFAULT_METHOD, crop_size: int = DEFAULT_SIZE
    ) -> None:
        if crop_method not in METHODS:
            raise ValueError(
                f"crop_method must be one of {list(METHODS)}. Received: crop_method={crop_method!r}"
            )
        if not isinstance(crop_size, int) or crop_size < 1:
            raise ValueError(f"crop_size must be an integer >= 1. Received: crop_size={crop_size!r}")
        self.detector = detector
        self.crop_method = crop_method
        self.crop_size = crop_size

    def describe(self) -> dict[str, Any]:
        """The limits and crop in use."""
        detector = self.detector
        return {
            "max_faces": detector.max_faces,
            "min_face_size": detector.min_face_size,
            "min_confidence": detector.min_confidence,
            "max_search_side": detector.max_search_side,
            "crop": self.crop_method,
            "crop_size": self.crop_size,
        }

    def find(self, image: bytes | np.ndarray) -> list[FaceCrop]:
        """The faces of ``image`` (encoded bytes, or upright RGB uint8 pixels), left to right.

        Raises ``OSError``/``ValueError`` when the bytes cannot be decoded and
        :class:`~aiclassify.faces.detector.FaceDetectionError` when the detector fails.
        """
        pixels = upright_pixels(image) if isinstance(image, bytes) else image
        faces = self.detector.detect(pixels)
        return [self._crop(pixels, face) for face in faces]

    def _crop(self, pixels: np.ndarray, face: Face) -> FaceCrop:
        quad = ffhq_quad(face) if self.crop_method == "aligned" else box_quad(face)
        crop = quad_crop(pixels, quad, self.crop_size)
        side = float(np.hypot(*(quad[3] - quad[0])))
        return FaceCrop(face, png_bytes(crop), self.crop_size / side)
