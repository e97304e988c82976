"""The shapes every evidence source reports in, and the text helpers that make metadata safe to show.

A :class:`Finding` is ``{source, finding, strength, detail}``:

- ``source``: where it was read (:data:`SOURCES`);
- ``finding``: a short code (``c2pa_manifest``, ``digital_source_type``, ``generator_parameters``,
  ``camera_exif``, ``unreadable``...; docs/evidence.md lists them all);
- ``strength``: how hard the finding is to fake, not how likely the image is to be AI-generated:
  ``strong`` only for a Content Credentials manifest whose signature is valid and whose signer is
  on the configured trust list; ``weak`` for anything anyone can write or remove (unsigned
  metadata, generator settings, camera EXIF, a signature by an unknown signer, a broken one);
  ``info`` for context that says nothing either way (the JPEG quality, the absence of metadata,
  a section that could not be read);
- ``detail``: plain words for people, with every metadata value truncated and its control and
  format characters escaped (:func:`safe_text`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

SOURCES = ("c2pa", "xmp", "exif", "text_chunks", "jpeg")
STRENGTHS = ("strong", "weak", "info")
DECLARED = (
    "ai-generated (signed, valid)",
    "ai-generated (signed, untrusted)",
    "ai-generated (signed, invalid)",
    "ai-generated (metadata, unsigned)",
    "none",
)
MAX_TEXT = 200  # characters of any one metadata value shown (prompts, tool names, settings)

# IPTC digital source types (http://cv.iptc.org/newscodes/digitalsourcetype/) that declare
# generative AI: created by a trained model, a composite with such content, or made by an algorithm.
AI_SOURCE_TYPES = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia"}
)


@dataclass(frozen=True)
class Finding:
    """One thing a metadata source says about an image."""

    source: str
    finding: str
    strength: str
    detail: str
    ai_declared: bool = field(default=False, compare=False)  # these two feed the ``declared`` rule only
    signed_state: str | None = field(default=None, compare=False)  # C2PA: valid, untrusted or invalid

    def to_dict(self) -> dict[str, str]:
        """``{source, finding, strength, detail}``."""
        return {
            "source": self.source,
            "finding": self.finding,
            "strength": self.strength,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Evidence:
    """Everything the metadata of one image says, beside (never inside) the model's score."""

    declared: str
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{declared, findings: [{source, finding, strength, detail}]}``."""
        return {"declared": self.declared, "findings": [f.to_dict() for f in self.findings]}


def unreadable(source: str, reason: str) -> Finding:
    """The finding for a section that could not be read: ``reason`` says why."""
    return Finding(
        source,
        "unreadable",
        "info",
        f"could not be read ({safe_text(reason)}); says nothing about the image either way",
    )


def escape(text: str) -> str:
    """``text`` with control and invisible format characters (newlines, bidi overrides) escaped."""
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def safe_text(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as text, truncated to ``limit`` characters (saying so) and escaped."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters, truncated)"
    return escape(text)


def decode_text(raw: bytes) -> str:
    """Metadata bytes as text: UTF-8 when valid, else Latin-1 (which never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
