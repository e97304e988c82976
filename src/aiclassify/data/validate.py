"""Find files that cannot be used as images before they reach the training pipeline."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from aiclassify import DECODABLE_FORMATS
from aiclassify.data.layouts import Sample

logger = logging.getLogger(__name__)

DECODABLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "I", "I;16B"})


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of the dataset, and why."""

    path: str
    reason: str


def image_problem(path: str) -> str | None:
    """Why ``path`` cannot be decoded as an image for training, or None when it can."""
    try:
        with Image.open(path) as image:
            if image.format not in DECODABLE_FORMATS:
                return f"unsupported format {image.format}; use JPEG, PNG, WebP, BMP or GIF"
            if image.format == "WEBP" and getattr(image, "is_animated", False):
                return "animated WebP; TensorFlow decodes only still WebP images: keep its first frame"
            if image.mode not in DECODABLE_MODES:
                return f"unsupported colour mode {image.mode}; convert it to RGB"
            image.draft("RGB", (1, 1))  # JPEG: decode at 1/8 scale, enough to detect truncation
            image.load()
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return f"unreadable image: {error}"
    return None


def drop_unreadable(samples: list[Sample], workers: int = 8) -> tuple[list[Sample], list[SkippedFile]]:
    """Split ``samples`` into readable ones and reported, skipped ones (order preserved)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(image_problem, (s.path for s in samples), chunksize=256))
    kept = [s for s, problem in zip(samples, problems, strict=True) if problem is None]
    skipped = [SkippedFile(s.path, p) for s, p in zip(samples, problems, strict=True) if p is not None]
    for item in skipped:
        logger.warning("Skipping %s: %s", item.path, item.reason)
    return kept, skipped
