"""One result row per image file: the fields of the API's image result, computed from the file.

Scoring a batch of files has two stages, as in the API: :func:`load_images` reads each file, checks
it (:func:`aiclassify.data.validate.image_problem`, as the predict command does), computes its
warnings and metadata evidence and prepares the readable ones for the model
(:meth:`~aiclassify.predict.Predictor.prepare`); :func:`scored_rows` runs the prepared inputs through
the model (:meth:`~aiclassify.predict.Predictor.score_prepared`) and turns each score into the
predictor's verdict. Both engines (:mod:`aiclassify.score.scorer`, :mod:`aiclassify.score.distributed`)
call these two, so their rows are the same.

A row is a plain dict, in :data:`FIELDS` order: ``path``; ``verdict``, ``label``, ``probability_ai``,
``probability_ai_uncalibrated``, ``threshold``, ``operating_point``, ``band`` (``{lower, upper}`` or
None), ``warnings`` (``[{code, message}]``) and ``evidence`` (``{declared, findings}``), as the API
gives them; ``width``, ``height`` and ``format`` from the image header; ``error``, why the file was not
scored (None when it was; every verdict field is then None); ``run``, the absolute path of the
model that scored it. :mod:`aiclassify.score.writers` writes rows as they are (JSON lines) or
flattened (:func:`flatten`, CSV).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from aiclassify.evidence import Evidence
from aiclassify.predict import ImageWarning, Predictor

logger = logging.getLogger(__name__)

FIELDS = (
    "path",
    "verdict",
    "label",
    "probability_ai",
    "probability_ai_uncalibrated",
    "threshold",
    "operating_point",
    "band",
    "warnings",
    "evidence",
    "width",
    "height",
    "format",
    "error",
    "run",
)
"""The keys of a row, in order."""

CSV_COLUMNS = (
    "path",
    "verdict",
    "label",
    "probability_ai",
    "probability_ai_uncalibrated",
    "threshold",
    "operating_point",
    "band_lower",
    "band_upper",
    "warnings",
    "evidence_declared",
    "evidence_findings",
    "width",
    "height",
    "format",
    "error",
    "run",
)
"""The columns of a flattened row (:func:`flatten`)."""


@dataclass(frozen=True)
class Provenance:
    """What every row of one output file shares: the model that scored it and the threshold in use."""

    run: str  # absolute path of the run directory or model folder
    threshold: float
    operating_point: str | None  # None: the run's default threshold

    def describe(self) -> str:
        """``run R (operating point P, threshold T)``, for messages."""
        point = self.operating_point or "default"
        return f"run {self.run} (operating point {point}, threshold {self.threshold:.6g})"


@dataclass(frozen=True)
class LoadedImage:
    """One file read and checked, ready to be scored, or why it cannot be."""

    path: str
    error: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    warnings: tuple[ImageWarning, ...] = ()
    evidence: Evidence | None = None


@dataclass(frozen=True)
class LoadedBatch:
    """A batch of files after :func:`load_images`: ``prepared`` holds the model input of each
    readable file (those without an error), in order."""

    images: list[LoadedImage]
    prepared: list[Any]


def load_images(predictor: Predictor, paths: Sequence[str | Path]) -> LoadedBatch:
    """Read, check and prepare a batch of image files (no model call; safe in a worker thread).

    A file the checks reject, or that the model's decoder cannot decode, gets an ``error``.
    """
    from aiclassify.data.validate import image_problem

    images, contents = [], []
    for path in map(str, paths):
        try:
            problem = image_problem(path)
            data = None if problem else Path(path).read_bytes()
        except OSError as error:  # gone or unreadable since it was listed
            problem, data = f"unreadable file: {error}", None
        if problem:
            images.append(LoadedImage(path, error=problem))
            continue
        width, height, image_format = _header(data)
        warnings, evidence = predictor.image_warnings(data), predictor.evidence(data)
        images.append(LoadedImage(path, None, width, height, image_format, warnings, evidence))
        contents.append(data)
    try:
        prepared = predictor.prepare(contents) if contents else []
    except Exception:  # one undecodable image fails the batch's decode: find it
        prepared = []
        readable = iter(index for index, image in enumerate(images) if image.error is None)
        for index, data in zip(readable, contents, strict=True):
            try:
                prepared += predictor.prepare([data])
            except Exception as error:
                message = getattr(error, "message", None) or str(error)
                images[index] = LoadedImage(images[index].path, error=f"undecodable: {message}")
    return LoadedBatch(images, prepared)


def scored_rows(predictor: Predictor, batch: LoadedBatch, provenance: Provenance) -> list[dict[str, Any]]:
    """The rows of a loaded batch: its prepared inputs scored in one go, each score the predictor's
    verdict at the provenance's threshold."""
    probabilities = iter(predictor.score_prepared(batch.prepared) if batch.prepared else [])
    rows = []
    for image in batch.images:
        if image.error is not None:
            rows.append(_row(image, provenance))
            continue
        verdict = predictor.verdict(
            next(probabilities),
            provenance.threshold,
            provenance.operating_point,
            image.warnings,
            image.evidence,
        )
        rows.append(
            _row(
                image,
                provenance,
                verdict=verdict.verdict,
                label=verdict.label,
                probability_ai=verdict.probability_ai,
                probability_ai_uncalibrated=verdict.probability_ai_uncalibrated,
                band=None if verdict.band is None else verdict.band.to_dict(),
                warnings=[warning.to_dict() for warning in verdict.warnings],
                evidence=None if verdict.evidence is None else verdict.evidence.to_dict(),
            )
        )
    return rows


def score_paths(predictor: Predictor, paths: Sequence[str | Path], provenance: Provenance) -> list[dict]:
    """The rows of a batch of files: :func:`load_images`, then :func:`scored_rows`."""
    return scored_rows(predictor, load_images(predictor, paths), provenance)


def _row(image: LoadedImage, provenance: Provenance, **verdict: Any) -> dict[str, Any]:
    values = {
        "path": image.path,
        "threshold": provenance.threshold,
        "operating_point": provenance.operating_point,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "error": image.error,
        "run": provenance.run,
        **verdict,
    }
    return {name: values.get(name) for name in FIELDS}


def _header(data: bytes) -> tuple[int | None, int | None, str | None]:
    """(width, height, Pillow format) from the image header."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width), int(image.height), image.format
    except Exception as error:  # checked readable just before: only a file changed meanwhile
        logger.debug("No header: %s", error)
        return None, None, None


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """A row as :data:`CSV_COLUMNS`: the band as two columns, the warning codes and the evidence
    findings (``source:finding``) each joined with ``;``; the messages and details are in the JSON
    lines format only."""
    band = row["band"] or {}
    evidence = row["evidence"] or {}
    flat = {
        **row,
        "band_lower": band.get("lower"),
        "band_upper": band.get("upper"),
        "warnings": None if row["warnings"] is None else ";".join(w["code"] for w in row["warnings"]),
        "evidence_declared": evidence.get("declared"),
        "evidence_findings": ";".join(f"{f['source']}:{f['finding']}" for f in evidence.get("findings", [])),
    }
    if row["evidence"] is None:
        flat["evidence_findings"] = None
    return {column: flat.get(column) for column in CSV_COLUMNS}
