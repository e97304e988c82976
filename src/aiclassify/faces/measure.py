"""How well detection and crops reproduce the training images: the figures of docs/faces.md.

The 140k images are already aligned 256x256 crops, so on each of them the detector should find one
face, and cropping that face the way the training images were made should give back (nearly) the
image itself. :func:`detection_counts` counts the faces found per image; :func:`crop_agreement`
compares each crop method's square with the image's own frame: the IoU of the square (mapped into
the image) with the image, and the mean absolute difference of the crop's pixels from the image's.
:func:`paste_photos` builds test scenes: face photos pasted on a noisy background, and
:func:`box_iou` compares boxes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from aiclassify.faces.crops import DEFAULT_BOX_SCALE, box_quad, ffhq_quad, quad_crop
from aiclassify.faces.detector import Face, FaceDetector


def load_rgb(path: Path) -> np.ndarray:
    """The image file at ``path`` as an RGB uint8 array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def frame_iou(quad: np.ndarray, width: int, height: int) -> float:
    """IoU of the polygon ``quad`` (pixel coordinates) with the image frame ``[0, width] x [0, height]``,
    rasterized at one sample per pixel."""
    quad = np.asarray(quad, dtype=np.float64)
    left, top = np.floor(np.minimum(quad.min(axis=0), 0)).astype(int)
    right, bottom = np.ceil(np.maximum(quad.max(axis=0), [width, height])).astype(int)
    canvas = Image.new("1", (right - left, bottom - top))
    ImageDraw.Draw(canvas).polygon([tuple(point) for point in quad - [left, top]], fill=1)
    inside = np.asarray(canvas, dtype=bool)
    frame = np.zeros_like(inside)
    frame[-top : height - top, -left : width - left] = True
    union = np.logical_or(inside, frame).sum()
    return float(np.logical_and(inside, frame).sum() / union) if union else 0.0


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``(x, y, width, height)`` boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    intersection = max(width, 0) * max(height, 0)
    union = a[2] * a[3] + b[2] * b[3] - intersection
    return intersection / union if union > 0 else 0.0


def paste_photos(
    size: tuple[int, int], photos: Sequence[np.ndarray], places: Sequence[tuple[int, int, int]], seed: int = 0
) -> np.ndarray:
    """A ``(width, height)`` scene of grey noise with each of ``photos`` resized to a square of side
    ``side`` and pasted with its top-left corner at ``(x, y)``, for each ``(x, y, side)`` of ``places``."""
    width, height = size
    noise = np.random.default_rng(seed).normal(128, 24, (height, width, 3))
    scene = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
    for photo, (x, y, side) in zip(photos, places, strict=True):
        scene.paste(Image.fromarray(photo).resize((side, side), Image.Resampling.LANCZOS), (x, y))
    return np.asarray(scene)


def detection_counts(detector: FaceDetector, paths: Iterable[Path]) -> dict:
    """Faces found per image over ``paths``: ``images``, ``exactly_one`` (count and ``rate``), the
    ``histogram`` of face counts, ``seconds`` spent detecting (files read apart), ``failed`` (the
    images the detector failed on, with the error) and ``single`` (``(path, face)`` of each image
    with exactly one face, for :func:`crop_agreement`)."""
    histogram, failed, single, seconds = Counter(), [], [], 0.0
    for path in paths:
        image = load_rgb(path)
        started = time.perf_counter()
        try:
            faces = detector.detect(image)
        except Exception as error:  # a failure is a figure here, not the end of the measurement
            failed.append(f"{Path(path).name}: {error}")
            continue
        finally:
            seconds += time.perf_counter() - started
        histogram[len(faces)] += 1
        if len(faces) == 1:
            single.append((Path(path), faces[0]))
    images = sum(histogram.values()) + len(failed)
    return {
        "images": images,
        "exactly_one": histogram[1],
        "rate": histogram[1] / images if images else float("nan"),
        "histogram": dict(sorted(histogram.items())),
        "seconds": seconds,
        "failed": failed,
        "single": single,
    }


def crop_agreement(
    single: Iterable[tuple[Path, Face]], box_scales: Sequence[float] = (DEFAULT_BOX_SCALE,)
) -> dict[str, dict]:
    """Per crop method (``aligned``, and ``box x<scale>`` for each of ``box_scales``), over the
    ``(path, face)`` pairs of ``single`` (images with one face found, as :func:`detection_counts`
    lists them): the mean and worst IoU of its square with the image frame and the mean absolute
    pixel difference (0-255) of its crop, at the image's size, from the image; ``images`` counts the
    images compared. The row ``frame`` crops the image's own frame: its difference is what
    resampling alone costs, the floor of the others."""
    rows: dict[str, list[tuple[float, float]]] = {"frame": [], "aligned": []}
    rows.update({f"box x{scale:g}": [] for scale in box_scales})
    for path, face in single:
        image = load_rgb(path)
        height, width = image.shape[:2]
        frame = np.array([[0, 0], [0, height], [width, height], [width, 0]], dtype=np.float64)
        quads = {"frame": frame, "aligned": ffhq_quad(face)}
        quads.update({f"box x{scale:g}": box_quad(face, scale) for scale in box_scales})
        for name, quad in quads.items():
            crop = np.asarray(
                Image.fromarray(quad_crop(image, quad, max(width, height))).resize((width, height))
            )
            difference = np.abs(crop.astype(np.float64) - image).mean()
            rows[name].append((frame_iou(quad, width, height), float(difference)))
    return {
        name: {
            "images": len(values),
            "mean_iou": float(np.mean([v[0] for v in values])) if values else float("nan"),
            "min_iou": float(np.min([v[0] for v in values])) if values else float("nan"),
            "mean_abs_diff": float(np.mean([v[1] for v in values])) if values else float("nan"),
        }
        for name, values in rows.items()
    }
