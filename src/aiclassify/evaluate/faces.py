"""The face path evaluated: a labelled folder of whole photos, every face found scored by the face model.

``evaluate --faces NAME=DIR`` scores each photo of ``DIR`` (a labelled folder, as for ``--ood``)
through :class:`~aiclassify.predict.faces.FacePath`, the path the API's ``model=auto`` and the
predict command's ``--face-run`` take, and reports, in the report's ``faces`` section:

- how many faces were found per photo (``histogram``; ``exactly_one_rate``, ``none``, ``failed``);
- ``faces``: per-face metrics, each face labelled with its photo's label (a photo is real or AI
  as a whole, so every face in it is);
- ``photos_by_faces``: per-photo metrics for photos with a face, a photo's score being its most
  AI-looking face's (a photo is called AI-generated when any of its faces is);
- ``whole_photos``: the same photos scored whole by the face model, for comparison with the crops.

Metrics use the raw model outputs at the run's threshold, like the rest of the report.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aiclassify.evaluate.scoring import folder_samples
from aiclassify.metrics import classification_summary
from aiclassify.predict import FacePath, Predictor

logger = logging.getLogger("aiclassify.evaluate")

SUMMARY_KEYS = (
    "examples",
    "accuracy",
    "roc_auc",
    "average_precision",
    "balanced_accuracy",
    "confusion_matrix",
)


def short_summary(labels: list[int], probabilities: list[float], threshold: float) -> dict[str, Any] | None:
    """The headline metrics of a set (None when it is empty)."""
    if not labels:
        return None
    summary = classification_summary(np.array(labels), np.array(probabilities), threshold)
    return {key: summary[key] for key in SUMMARY_KEYS}


def face_path_section(
    predictor: Predictor, path: FacePath, name: str, directory: Path, threshold: float
) -> dict[str, Any]:
    """The ``faces`` entry for one labelled folder of photos (see the module); ``predictor`` is the
    run's model, ``path`` its face path."""
    samples = folder_samples(directory)
    if not samples:
        raise ValueError(f"--faces {name}: no readable images under {directory}")
    counts: Counter[int] = Counter()
    failed = 0
    face_labels, face_scores, photo_labels, photo_scores, with_face = [], [], [], [], []
    for start in range(0, len(samples), predictor.batch_size):
        batch = samples[start : start + predictor.batch_size]
        images = [Path(sample.path).read_bytes() for sample in batch]
        for sample, image, (_, verdicts) in zip(batch, images, path.score(images), strict=True):
            if verdicts is None:
                failed += 1
                continue
            counts[len(verdicts)] += 1
            if not verdicts:
                continue
            raw = [verdict.verdict.probability_ai_uncalibrated for verdict in verdicts]
            face_labels += [sample.label] * len(raw)
            face_scores += raw
            photo_labels.append(sample.label)
            photo_scores.append(max(raw))
            with_face.append(image)
    whole = list(predictor.probabilities(with_face)) if with_face else []
    searched = sum(counts.values())
    logger.info("--faces %s: %d photos, %d faces", name, len(samples), len(face_scores))
    return {
        "root": str(directory),
        "photos": len(samples),
        "histogram": {str(count): photos for count, photos in sorted(counts.items())},
        "exactly_one_rate": counts[1] / searched if searched else None,
        "none": counts[0],
        "failed": failed,
        "detector": path.finder.describe(),
        "faces": short_summary(face_labels, face_scores, threshold),
        "photos_by_faces": short_summary(photo_labels, photo_scores, threshold),
        "whole_photos": short_summary(photo_labels, whole, threshold),
    }


def markdown_lines(sections: dict[str, Any]) -> list[str]:
    """The report.md section for the ``faces`` entries."""
    from aiclassify.evaluate.markdown import table

    lines = [
        "## Face path",
        "",
        "Each photo's faces found by MTCNN, aligned as the training images, and scored by this model "
        "(each face carries its photo's label); 'photos by faces' calls a photo AI-generated when any "
        "of its faces is; 'whole photos' scores the same photos whole.",
        "",
    ]
    rows = []
    for name, section in sections.items():
        for part in ("faces", "photos_by_faces", "whole_photos"):
            summary = section[part] or {}
            rows.append(
                [
                    name,
                    part.replace("_", " "),
                    summary.get("examples"),
                    summary.get("accuracy"),
                    summary.get("roc_auc"),
                ]
            )
    lines += table(["set", "scored", "examples", "accuracy", "ROC-AUC"], rows)
    lines += [""]
    for name, section in sections.items():
        lines.append(
            f"- {name}: {section['photos']} photos; faces per photo {section['histogram']}, "
            f"exactly one in {_percent(section['exactly_one_rate'])}, detector failures {section['failed']}."
        )
    return [*lines, ""]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"
