"""Evidence beyond pixels: what an image's metadata declares, reported beside the model's verdict.

:func:`read_evidence` reads, safely and offline, in the order journalists weigh them:

1. Content Credentials (C2PA, :mod:`.c2pa`), signed;
2. embedded metadata: IPTC/XMP provenance fields (:mod:`.xmp`), EXIF (:mod:`.exif`), generator
   settings in text chunks (:mod:`.text_chunks`);
3. the JPEG quality estimate (:func:`aiclassify.predict.diagnostics.estimate_jpeg_quality`), as
   context for the pixel model.

Each :class:`Finding` is ``{source, finding, strength, detail}`` (:mod:`.findings`). None of it
changes ``probability_ai``: the pixel model never sees metadata, and the evidence is reported next to
its verdict, never merged into it.

The ``declared`` rule, first match wins:

- ``ai-generated (signed, valid)``: a C2PA manifest whose validation state is ``valid`` (intact and
  signed by a certificate on the configured trust list) has an action whose ``digitalSourceType``
  is ``trainedAlgorithmicMedia``, ``compositeWithTrainedAlgorithmicMedia`` or ``algorithmicMedia``;
- ``ai-generated (signed, untrusted)``: the same in an intact manifest whose signer is not on the
  trust list;
- ``ai-generated (signed, invalid)``: the same in a manifest that fails validation (changed after
  signing);
- ``ai-generated (metadata, unsigned)``: no such manifest, but unsigned metadata declares it: an
  XMP ``DigitalSourceType`` of those types or IPTC generative-AI fields, generator settings in text
  chunks (A1111/Forge, ComfyUI, InvokeAI, NovelAI), or a generator's name in EXIF ``Software`` or
  XMP ``CreatorTool``;
- ``none``: nothing declares generative AI. This is **not** a finding that the image is real:
  most images carry no provenance metadata at all.

Reading never raises and never decodes pixels: every parser is bounded (:mod:`.containers`), and a
malformed, truncated, huge or hostile section gives an ``unreadable`` finding with the reason.
"""

from __future__ import annotations

import io
import logging

from aiclassify.evidence.c2pa import c2pa_findings
from aiclassify.evidence.containers import scan
from aiclassify.evidence.exif import read_exif
from aiclassify.evidence.findings import (
    DECLARED,
    SOURCES,
    STRENGTHS,
    Evidence,
    Finding,
    unreadable,
)
from aiclassify.evidence.text_chunks import text_findings
from aiclassify.evidence.xmp import xmp_findings

__all__ = ["DECLARED", "SOURCES", "STRENGTHS", "Evidence", "Finding", "declared", "read_evidence"]

logger = logging.getLogger(__name__)


def read_evidence(data: bytes) -> Evidence:
    """Everything ``data``'s metadata says, with the ``declared`` rule applied (never raises)."""
    findings: list[Finding] = []
    container = _guarded(findings, "text_chunks", lambda: scan(bytes(data))) or scan(b"")
    findings += _guarded(findings, "c2pa", lambda: c2pa_findings(data, container.format)) or []
    findings += _guarded(findings, "xmp", lambda: xmp_findings(container.xmp)) or []
    exif, comments = _guarded(findings, "exif", lambda: read_exif(container.exif)) or ([], [])
    findings += exif
    findings += _guarded(findings, "text_chunks", lambda: text_findings(container.texts, comments)) or []
    findings += [unreadable(source, reason) for source, reason in container.notes]
    findings += _guarded(findings, "jpeg", lambda: _jpeg_quality(data)) or []
    return Evidence(declared(findings), tuple(findings))


def _guarded(findings: list[Finding], source: str, read):
    """``read()``, or None with an ``unreadable`` finding appended when it raised (a parser bug must
    never fail a prediction)."""
    try:
        return read()
    except Exception as error:
        logger.warning("Reading %s evidence failed: %s", source, error, exc_info=True)
        findings.append(unreadable(source, f"{type(error).__name__}: {error}"))
        return None


def declared(findings: list[Finding] | tuple[Finding, ...]) -> str:
    """The ``declared`` rule (above) applied to ``findings``."""
    for state in ("valid", "untrusted", "invalid"):
        if any(f.ai_declared and f.signed_state == state for f in findings):
            return f"ai-generated (signed, {state})"
    if any(f.ai_declared and f.signed_state is None for f in findings):
        return "ai-generated (metadata, unsigned)"
    return "none"


def _jpeg_quality(data: bytes) -> list[Finding]:
    from PIL import Image

    from aiclassify.predict.diagnostics import estimate_jpeg_quality

    try:
        with Image.open(io.BytesIO(data)) as image:
            quality = estimate_jpeg_quality(image) if image.format in ("JPEG", "MPO") else None
    except Exception:  # not an image Pillow reads: the prediction reports that
        return []
    if quality is None:
        return []
    return [
        Finding(
            "jpeg",
            "jpeg_quality",
            "info",
            f"JPEG quality about {quality} (estimated from the quantization tables): how much the file "
            "was compressed when last saved; says nothing about its origin, but low quality hides the "
            "traces the pixel model looks for",
        )
    ]
