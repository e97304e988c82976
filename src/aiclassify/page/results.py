"""Scoring a batch of uploads through the API and turning the answers into a table, CSV and JSON.

Each image is sent in its own request so that an unreadable file fails only its own row (the API
rejects a whole request when one of its images is bad). Nothing here imports Streamlit.

A row's ``verdict`` is the API's (``AI-generated``, ``Real`` or ``Inconclusive``, by the model's
inconclusive band); ``label`` is the decision at the threshold in use, ``warnings`` what makes
the verdict unreliable, ``evidence`` what the image's metadata declares (Content Credentials, XMP,
EXIF, generator settings), shown beside the verdict in plain words (:func:`evidence_lines`).

With ``model=auto`` (or ``faces``) the API also scores every face it finds: a row's ``faces`` is then
a list of :class:`FaceResult` (``[]`` when none was found); it is None when faces were not searched.
The table, CSV and JSON have one record per image and, after it, one per face (:func:`table_records`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aiclassify.page.client import ApiCallError, ApiClient

SUPPORTED_TYPES = ("jpg", "jpeg", "png", "webp", "bmp")
VERDICTS = {"ai-generated": "AI-generated", "real": "Real", "inconclusive": "Inconclusive"}
INCONCLUSIVE = VERDICTS["inconclusive"]
INCONCLUSIVE_TEXT = "Inconclusive: the model is not confident either way"
TABLE_COLUMNS = (
    "file",
    "verdict",
    "label",
    "warnings",
    "probability_ai",
    "band_lower",
    "band_upper",
    "threshold",
    "operating_point",
    "model",
    "model_version",
    "width",
    "height",
    "format",
    "error",
    "face",
    "faces_found",
    "box",
    "detector_confidence",
)
"""The columns of the CSV and JSON downloads. An image's record leaves ``face``, ``box`` and
``detector_confidence`` empty and has ``faces_found`` (empty when faces were not searched); each face's
record, after its image's, has the face's number (1, 2, ... left to right), box, detector confidence,
verdict, warnings and model, and leaves the image's size, format, error and ``faces_found`` empty."""


class VerdictLine:
    """What a whole-image row and a face share: a verdict shown to people and its warnings."""

    verdict: str | None
    warnings: list[dict[str, str]]

    @property
    def inconclusive(self) -> bool:
        """Whether the model was not confident either way."""
        return self.verdict == INCONCLUSIVE

    @property
    def warning_codes(self) -> str:
        """The warnings' codes, comma-separated (empty when none)."""
        return ", ".join(str(w.get("code")) for w in self.warnings)


@dataclass
class FaceResult(VerdictLine):
    """One face the API found in an image and scored with its face model."""

    index: int  # 0, 1, ... left to right, as the API numbers them
    box: tuple[int, int, int, int] | None = None  # (x, y, width, height), pixels after EXIF orientation
    detector_confidence: float | None = None
    verdict: str | None = None  # AI-generated, Real or Inconclusive
    label: str | None = None  # AI-generated or Real at the threshold in use
    probability_ai: float | None = None
    threshold: float | None = None
    operating_point: str | None = None
    band_lower: float | None = None
    band_upper: float | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)
    model: str | None = None
    model_version: str | None = None
    landmarks: dict[str, list[float]] | None = None

    @property
    def number(self) -> int:
        """The face's number as shown to people: 1 for the leftmost face."""
        return self.index + 1

    @property
    def box_text(self) -> str:
        """The box as ``x, y, width x height`` in pixels, or an empty string."""
        if self.box is None:
            return ""
        x, y, width, height = self.box
        return f"x {x}, y {y}, {width}x{height}"


@dataclass
class ResultRow(VerdictLine):
    """The verdict on one uploaded file, or why there is none (``error``)."""

    file: str
    verdict: str | None = None  # AI-generated, Real or Inconclusive (by the model's band)
    label: str | None = None  # AI-generated or Real at the threshold in use
    warnings: list[dict[str, str]] = field(default_factory=list)  # [{"code", "message"}]
    probability_ai: float | None = None
    band_lower: float | None = None
    band_upper: float | None = None
    threshold: float | None = None
    operating_point: str | None = None
    model: str | None = None
    model_version: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    error: str | None = None
    overlay_png: bytes | None = None  # Grad-CAM overlay, when asked for and the model can explain
    overlay_note: str | None = None  # why there is no overlay although one was asked for
    evidence: dict[str, Any] | None = None  # {"declared", "findings": [{source, finding, strength, detail}]}
    faces: list[FaceResult] | None = None  # None: faces not searched; []: searched, none found

    @property
    def ok(self) -> bool:
        """Whether the file was scored."""
        return self.error is None and self.verdict is not None

    @property
    def size(self) -> str:
        """``width x height`` in pixels, or an empty string."""
        return f"{self.width}x{self.height}" if self.width and self.height else ""


def verdict_text(label: str | None) -> str | None:
    """The API verdict or label (``ai-generated``/``real``/``inconclusive``) as shown to people:
    ``AI-generated``, ``Real`` or ``Inconclusive``."""
    return VERDICTS.get(label or "", label)


def row_from_prediction(filename: str, prediction: dict[str, Any]) -> ResultRow:
    """A table row from one entry of the API's ``predictions`` list."""
    model = prediction.get("model") or {}
    band = prediction.get("band") if isinstance(prediction.get("band"), dict) else {}
    warnings = [w for w in prediction.get("warnings") or [] if isinstance(w, dict)]
    return ResultRow(
        file=filename,
        verdict=verdict_text(prediction.get("verdict") or prediction.get("label")),
        label=verdict_text(prediction.get("label")),
        warnings=warnings,
        probability_ai=prediction.get("probability_ai"),
        band_lower=band.get("lower"),
        band_upper=band.get("upper"),
        threshold=prediction.get("threshold"),
        operating_point=prediction.get("operating_point") or "default",
        model=model.get("name"),
        model_version=model.get("version"),
        width=prediction.get("width"),
        height=prediction.get("height"),
        format=prediction.get("format"),
        overlay_png=overlay_from_prediction(prediction),
        evidence=prediction.get("evidence") if isinstance(prediction.get("evidence"), dict) else None,
        faces=faces_from_prediction(prediction),
    )


def _box(value: Any) -> tuple[int, int, int, int] | None:
    """``[x, y, width, height]`` as a tuple of ints, or None when it is not four numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    x, y, width, height = (round(v) for v in value)
    return x, y, width, height


def face_from_api(position: int, face: dict[str, Any]) -> FaceResult:
    """A :class:`FaceResult` from one entry of a prediction's ``faces`` list (``position`` is its place
    in the list, used when the entry has no ``index``)."""
    model = face.get("model") if isinstance(face.get("model"), dict) else {}
    band = face.get("band") if isinstance(face.get("band"), dict) else {}
    index = face.get("index")
    return FaceResult(
        index=index if isinstance(index, int) and not isinstance(index, bool) else position,
        box=_box(face.get("box")),
        detector_confidence=face.get("detector_confidence"),
        verdict=verdict_text(face.get("verdict") or face.get("label")),
        label=verdict_text(face.get("label")),
        probability_ai=face.get("probability_ai"),
        threshold=face.get("threshold"),
        operating_point=face.get("operating_point") or "default",
        band_lower=band.get("lower"),
        band_upper=band.get("upper"),
        warnings=[w for w in face.get("warnings") or [] if isinstance(w, dict)],
        model=model.get("name"),
        model_version=model.get("version"),
        landmarks=face.get("landmarks") if isinstance(face.get("landmarks"), dict) else None,
    )


def faces_from_prediction(prediction: dict[str, Any]) -> list[FaceResult] | None:
    """The prediction's faces, left to right: None when the API did not search for faces (no
    ``faces``, or null), ``[]`` when it searched and found none."""
    faces = prediction.get("faces")
    if not isinstance(faces, list):
        return None
    found = [face_from_api(i, face) for i, face in enumerate(faces) if isinstance(face, dict)]
    return sorted(found, key=lambda face: face.index)


DECLARED_TEXT = {
    "ai-generated (signed, valid)": "Content Credentials signed by a trusted signer, unchanged since "
    "signing, declare this image AI-generated. The signer vouches for it; it is not proof the signer "
    "is honest.",
    "ai-generated (signed, untrusted)": "Content Credentials declare this image AI-generated, but the "
    "signer is not on the trust list: anyone can make such a signature.",
    "ai-generated (signed, invalid)": "Content Credentials declare this image AI-generated, but the file "
    "or its credentials changed after signing: the declaration cannot be relied on.",
    "ai-generated (metadata, unsigned)": "Unsigned metadata declares this image AI-generated (or names "
    "the generator). Anyone can write or remove it: a claim, not proof.",
    "none": "No metadata declares this image AI-generated. That does not make it real: most images "
    "carry no provenance metadata at all.",
}
STRENGTH_TEXT = {
    "strong": "Strong: cryptographically signed by a trusted signer and unchanged; it shows who vouches "
    "for the file's history, not that the history is true",
    "weak": "Weak: anyone can write, copy or remove this; a claim, not proof",
    "info": "Context only: says nothing either way about whether the image is AI-generated",
}
SOURCE_TEXT = {
    "c2pa": "Content Credentials (C2PA)",
    "xmp": "XMP/IPTC metadata",
    "exif": "EXIF",
    "text_chunks": "Generator settings",
    "jpeg": "JPEG",
}


MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~$:")


def markdown_escape(text: str) -> str:
    """``text`` with every Markdown (and HTML) special character backslash-escaped, so that metadata
    (a prompt, a tool name) cannot add links, images or formatting to the page."""
    return "".join("\\" + char if char in MARKDOWN_SPECIAL else char for char in text)


def evidence_lines(evidence: dict[str, Any] | None) -> list[str]:
    """The page's "Evidence" section in plain words: what the metadata declares, then one line per
    finding (its source, what it says, and what its strength means and does not mean)."""
    if not isinstance(evidence, dict):
        return ["No metadata evidence was returned for this image."]
    declared = str(evidence.get("declared") or "none")
    lines = [DECLARED_TEXT.get(declared, declared)]
    for finding in evidence.get("findings") or []:
        if not isinstance(finding, dict):
            continue
        source = SOURCE_TEXT.get(str(finding.get("source")), str(finding.get("source")))
        strength = STRENGTH_TEXT.get(str(finding.get("strength")), str(finding.get("strength")))
        lines.append(f"{source}: {finding.get('detail')}. ({strength}.)")
    return lines


def overlay_from_prediction(prediction: dict[str, Any]) -> bytes | None:
    """The PNG bytes of the prediction's Grad-CAM overlay (``explanation.overlay_png_b64``), or None."""
    explanation = prediction.get("explanation")
    if not isinstance(explanation, dict) or not isinstance(explanation.get("overlay_png_b64"), str):
        return None
    try:
        return base64.b64decode(explanation["overlay_png_b64"], validate=True)
    except (binascii.Error, ValueError):
        return None


def _predict_one(
    client: ApiClient,
    name: str,
    content: bytes,
    model: str | None,
    operating_point: str | None,
    explain: bool,
) -> ResultRow:
    """One file's row; with ``explain``, a model that cannot explain is scored without an overlay."""
    try:
        body = client.predict(
            [(name, content)], model=model, operating_point=operating_point, explain=explain
        )
        return row_from_prediction(name, body["predictions"][0])
    except ApiCallError as error:
        if not (explain and error.status == 422 and "explanations need" in error.message):
            raise
        body = client.predict([(name, content)], model=model, operating_point=operating_point)
        row = row_from_prediction(name, body["predictions"][0])
        row.overlay_note = error.message
        return row


def score_files(
    client: ApiClient,
    files: Sequence[tuple[str, bytes]],
    model: str | None = None,
    operating_point: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    explain: bool = False,
) -> tuple[list[ResultRow], ApiCallError | None]:
    """Score ``files`` ((name, content) pairs) one request each; the rows, in order, and a fatal error.

    A file the API rejects (unreadable, unsupported, too large) gets a row with its ``error`` and the
    batch goes on. When the API is unreachable or stops answering, the remaining files are marked
    not scored and that error is returned so the page can say what happened. ``progress(done,
    total, name)`` is called after each file. ``explain`` asks for Grad-CAM overlays
    (``ResultRow.overlay_png``); a model that cannot explain leaves ``overlay_note`` instead.
    """
    rows: list[ResultRow] = []
    fatal: ApiCallError | None = None
    total = len(files)
    for done, (name, content) in enumerate(files, start=1):
        if fatal is not None:
            rows.append(ResultRow(file=name, error=f"not scored: {fatal.message}"))
        elif not content:
            rows.append(ResultRow(file=name, error="empty file"))
        else:
            try:
                rows.append(_predict_one(client, name, content, model, operating_point, explain))
            except ApiCallError as error:
                rows.append(ResultRow(file=name, error=error.message))
                if error.api_unusable:
                    fatal = error
            except (KeyError, IndexError, TypeError):
                rows.append(ResultRow(file=name, error="the API's answer had no prediction"))
        if progress is not None:
            progress(done, total, name)
    return rows, fatal


def face_record(row: ResultRow, face: FaceResult) -> dict[str, Any]:
    """One face of ``row`` as a record with the columns of :data:`TABLE_COLUMNS` (``box`` as a list
    ``[x, y, width, height]``; the image's size, format, error and ``faces_found`` empty)."""
    record = dict.fromkeys(TABLE_COLUMNS)
    face_values = asdict(face)
    for column in TABLE_COLUMNS:
        if column in face_values and column != "box":
            record[column] = face_values[column]
    record.update(
        file=row.file,
        face=face.number,
        box=None if face.box is None else list(face.box),
    )
    return record


def table_records(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    """The rows as plain dicts with the columns of :data:`TABLE_COLUMNS`, for tables and JSON
    (``warnings`` as a list of ``{code, message}``): each image's record, then one per face found in
    it (:func:`face_record`)."""
    records = []
    for row in rows:
        values = asdict(row)
        record = {column: values.get(column) for column in TABLE_COLUMNS}
        record["faces_found"] = None if row.faces is None else len(row.faces)
        records.append(record)
        records.extend(face_record(row, face) for face in row.faces or [])
    return records


def display_records(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    """The rows as shown in the page's table: file, verdict, label, warnings, probability, model,
    size, error; when faces were searched in any image, also ``face`` (empty for the whole image, then
    1, 2, ... for each face, on its own row), ``faces found`` (on the image's row), ``detector
    confidence`` and ``box``."""
    with_faces = any(row.faces is not None for row in rows)
    records = []
    for row in rows:
        record = {
            "file": row.file,
            "verdict": row.verdict or "—",
            "label at threshold": row.label or "",
            "warnings": row.warning_codes,
            "probability AI": None if row.probability_ai is None else round(row.probability_ai, 4),
            "threshold": None if row.threshold is None else round(row.threshold, 4),
            "model": f"{row.model} v{row.model_version}" if row.model else "",
            "size": row.size,
            "error": row.error or "",
        }
        if not with_faces:
            records.append(record)
            continue
        found = None if row.faces is None else len(row.faces)
        records.append(
            {
                "file": row.file,
                "face": "",
                **record,
                "faces found": found,
                "detector confidence": None,
                "box": "",
            }
        )
        for face in row.faces or []:
            records.append(
                {
                    "file": row.file,
                    "face": str(face.number),
                    "verdict": face.verdict or "—",
                    "label at threshold": face.label or "",
                    "warnings": face.warning_codes,
                    "probability AI": None if face.probability_ai is None else round(face.probability_ai, 4),
                    "threshold": None if face.threshold is None else round(face.threshold, 4),
                    "model": f"{face.model} v{face.model_version}" if face.model else "",
                    "size": "",
                    "error": "",
                    "faces found": None,
                    "detector confidence": None
                    if face.detector_confidence is None
                    else round(face.detector_confidence, 4),
                    "box": face.box_text,
                }
            )
    return records


def to_csv(rows: Sequence[ResultRow]) -> str:
    """The results as CSV text with a header row (columns of :data:`TABLE_COLUMNS`, one row per
    image and per face; ``warnings`` as their codes, separated by ``; ``; ``box`` as
    ``x y width height``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in table_records(rows):
        record["warnings"] = "; ".join(str(w.get("code")) for w in record["warnings"])
        if record["box"] is not None:
            record["box"] = " ".join(str(v) for v in record["box"])
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue()


def to_json(rows: Sequence[ResultRow]) -> str:
    """The results as a JSON array of objects (columns of :data:`TABLE_COLUMNS`, one object per
    image and per face; ``box`` as ``[x, y, width, height]``)."""
    return json.dumps(table_records(rows), indent=2)


def summary(rows: Sequence[ResultRow]) -> dict[str, int]:
    """How many files were called AI-generated, Real, Inconclusive, or failed (by the whole-image
    verdict: faces are not counted)."""
    counts = {"AI-generated": 0, "Real": 0, "Inconclusive": 0, "Failed": 0}
    for row in rows:
        counts[row.verdict if row.ok and row.verdict in counts else "Failed"] += 1
    return counts
