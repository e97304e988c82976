"""Each face found cut out of the ORIGINAL image to the geometry of the face model's training images.

The face model learns from the "140k Real and Fake Faces" images: FFHQ photos aligned by the FFHQ
recipe (Karras et al. 2019, "A Style-Based Generator Architecture for GANs"; NVlabs/ffhq-dataset,
``recreate_aligned_images``) and StyleGAN faces made in that geometry, at 256x256. Two crops:

- :func:`aligned_crop` (the default, :data:`DEFAULT_METHOD`): the FFHQ recipe's oriented square,
  from MTCNN's eye centres and mouth corners where FFHQ used dlib's. With ``e0``, ``e1`` the eyes
  (image left, right), ``m`` the middle of the mouth corners, ``eye_to_eye = e1 - e0``,
  ``eye_to_mouth = m - (e0 + e1) / 2``: the square's centre is ``(e0 + e1) / 2 + 0.1 eye_to_mouth``;
  its x axis is ``eye_to_eye`` minus ``eye_to_mouth`` turned a quarter, so the eyes end up level;
  its half-side is ``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)``.
- :func:`box_crop`: the square around the detector's box, ``box_scale`` times its longer side, not
  rotated. It needs no landmarks, and is kept for comparison and for faces whose landmarks are
  unreliable (profiles).

docs/faces.md measures both against the training images. Both cut a square ``size`` x ``size``
RGB uint8 array (default 256, the training images' side; the model's input size is applied later):
a square larger than ``size`` in the photo is first shrunk to it (Lanczos, so nothing aliases), then
the square is warped to ``size`` (bilinear); the image's own frame gives back the image exactly.
Where the square leaves the photo it is filled with the photo's mirror image, as FFHQ pads (FFHQ
also blurs the mirrored part; not done here). FFHQ warps at four times the output size, then
reduces: on 20 of the 140k sample's real images, that changed the crops' difference from the
images by under 0.1 (of 255), at ten times the time.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from PIL import Image

from aiclassify.faces.detector import Face, as_rgb_array

CropMethod = Literal["aligned", "box"]
METHODS: tuple[str, ...] = ("aligned", "box")
DEFAULT_METHOD: CropMethod = "aligned"
DEFAULT_SIZE = 256
"""The side of the 140k training images."""
DEFAULT_BOX_SCALE = 1.4
"""The side of :func:`box_crop`'s square, in longer sides of the detector's box (docs/faces.md)."""


def ffhq_quad(face: Face) -> np.ndarray:
    """The FFHQ recipe's oriented square for ``face``: its corners (top-left, bottom-left,
    bottom-right, top-right, as they end up in the crop), shape (4, 2), in the image's continuous
    coordinates (pixel ``i`` spans ``[i, i + 1]``; a landmark at pixel ``i`` is at ``i + 0.5``, the
    half pixel FFHQ adds too)."""
    points = face.landmarks
    eye_left, eye_right = np.array(points.left_eye) + 0.5, np.array(points.right_eye) + 0.5
    mouth = (np.array(points.mouth_left) + np.array(points.mouth_right)) / 2 + 0.5
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye, eye_to_mouth = eye_right - eye_left, mouth - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / max(np.hypot(*x), 1e-12)
    y = np.array([-x[1], x[0]])
    centre = eye_avg + eye_to_mouth * 0.1
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def box_quad(face: Face, box_scale: float = DEFAULT_BOX_SCALE) -> np.ndarray:
    """The axis-aligned square ``box_scale`` times the longer side of ``face``'s box, on the box's
    centre: corners as in :func:`ffhq_quad` (the box covers pixels ``x`` to ``x + width - 1``, so
    ``[x, x + width]``)."""
    x, y, width, height = face.box
    half = box_scale * max(width, height) / 2
    cx, cy = x + width / 2, y + height / 2
    return np.array(
        [[cx - half, cy - half], [cx - half, cy + half], [cx + half, cy + half], [cx + half, cy - half]]
    )


def quad_crop(image: Any, quad: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The square whose corners in ``image`` are ``quad`` (ordered and in the coordinates of
    :func:`ffhq_quad`), as a ``size`` x ``size`` RGB uint8 array; outside the image, its mirror
    image. The quad of the image's own frame gives back the image (resized to ``size``)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an integer >= 1. Received: size={size!r}")
    pixels = as_rgb_array(image)
    quad = np.asarray(quad, dtype=np.float64)
    side = float(np.hypot(*(quad[3] - quad[0])))
    if quad.shape != (4, 2) or not np.isfinite(quad).all() or side < 1:
        raise ValueError(
            f"The square must have four finite corners, 1 px apart or more. Received: quad={quad.tolist()}"
        )
    border = max(int(np.rint(side * 0.1)), 3)
    left, top = np.floor(quad.min(axis=0)).astype(int) - border
    right, bottom = np.ceil(quad.max(axis=0)).astype(int) + border
    height, width = pixels.shape[:2]
    region = pixels[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    if region.size == 0:
        raise ValueError(
            f"The square lies outside the {width}x{height} image. Received: quad={quad.tolist()}"
        )
    padding = ((max(-top, 0), max(bottom - height, 0)), (max(-left, 0), max(right - width, 0)), (0, 0))
    region = Image.fromarray(np.pad(region, padding, mode="reflect") if np.any(padding) else region)
    quad = quad - [left, top]
    shrink = side / size
    if shrink > 1:
        region = region.resize(
            (max(1, round(region.width / shrink)), max(1, round(region.height / shrink))),
            Image.Resampling.LANCZOS,
        )
        quad = quad * [region.width / (right - left), region.height / (bottom - top)]
    warped = region.transform((size, size), Image.Transform.QUAD, quad.flatten(), Image.Resampling.BILINEAR)
    return np.asarray(warped)


def aligned_crop(image: Any, face: Face, size: int = DEFAULT_SIZE) -> np.ndarray:
    """``face`` cut out of ``image`` (original pixels) as FFHQ aligned its photos (the module's
    docstring): a ``size`` x ``size`` RGB uint8 array, eyes level."""
    return quad_crop(image, ffhq_quad(face), size)


def box_crop(
    image: Any, face: Face, size: int = DEFAULT_SIZE, box_scale: float = DEFAULT_BOX_SCALE
) -> np.ndarray:
    """The square ``box_scale`` times the longer side of ``face``'s box, on its centre, cut out of
    ``image`` (original pixels) as a ``size`` x ``size`` RGB uint8 array, not rotated."""
    if box_scale <= 0:
        raise ValueError(f"box_scale must be > 0. Received: box_scale={box_scale!r}")
    return quad_crop(image, box_quad(face, box_scale), size)


def crop_face(
    image: Any, face: Face, size: int = DEFAULT_SIZE, method: CropMethod = DEFAULT_METHOD
) -> np.ndarray:
    """``face`` cut out of ``image`` by ``method`` (``"aligned"``, the default, or ``"box"``)."""
    if method == "aligned":
        return aligned_crop(image, face, size)
    if method == "box":
        return box_crop(image, face, size)
    raise ValueError(f"method must be one of {list(METHODS)}. Received: method={method!r}")
