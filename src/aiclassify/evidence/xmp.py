"""IPTC/XMP provenance fields, read without C2PA: what an XMP packet declares, unsigned.

Fields read (namespaces by URI, so any prefix works):

- ``Iptc4xmpExt:DigitalSourceType``: an IPTC digital source type URI
  (``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` and the others);
  one of :data:`~aiclassify.evidence.findings.AI_SOURCE_TYPES` declares generative AI;
- ``Iptc4xmpExt:AISystemUsed``, ``AISystemVersionUsed``, ``AIPromptInformation``,
  ``AIPromptWriterName`` (IPTC 2025.1 generative-AI properties);
- ``xmp:CreatorTool``, checked against the generator list of :mod:`aiclassify.evidence.exif`.

Every one of them is plain text anyone can write into a file or strip from it: ``weak``. A packet
with a DTD (``<!DOCTYPE``/``<!ENTITY``, the door to entity-expansion bombs) or over the size limit
is not parsed: it gives an ``unreadable`` finding.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiclassify.evidence.containers import MAX_BLOCK_BYTES
from aiclassify.evidence.findings import AI_SOURCE_TYPES, Finding, decode_text, safe_text, unreadable

IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
SOURCE_TYPE_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AI_FIELDS = {  # property: (finding code, label)
    "AISystemUsed": ("ai_system_used", "AI system used"),
    "AISystemVersionUsed": ("ai_system_version", "AI system version"),
    "AIPromptInformation": ("ai_prompt", "prompt"),
    "AIPromptWriterName": ("ai_prompt_writer", "prompt writer"),
}


def xmp_findings(packets: list[bytes]) -> list[Finding]:
    """The findings of a file's XMP packets (never raises)."""
    findings: list[Finding] = []
    for packet in packets:
        try:
            findings += _packet_findings(packet)
        except Exception as error:  # RecursionError on absurd nesting, anything else unforeseen
            findings.append(unreadable("xmp", f"XMP packet: {type(error).__name__}"))
    return findings


def _packet_findings(packet: bytes) -> list[Finding]:
    if len(packet) > MAX_BLOCK_BYTES:
        return [
            unreadable("xmp", f"XMP packet of {len(packet)} bytes, over the {MAX_BLOCK_BYTES}-byte limit")
        ]
    text = decode_text(packet).strip("\x00 \r\n\t")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return [unreadable("xmp", "XMP packet with a DTD or entities, which XMP never needs; not parsed")]
    start = text.find("<x:xmpmeta")
    if start < 0:
        start = text.find("<rdf:RDF")
    end_tag = "</x:xmpmeta>" if text.startswith("<x:xmpmeta", max(start, 0)) else "</rdf:RDF>"
    end = text.rfind(end_tag)
    if start < 0 or end < 0:
        return [unreadable("xmp", "XMP packet without an xmpmeta or RDF element (truncated?)")]
    try:
        root = ET.fromstring(text[start : end + len(end_tag)])
    except ET.ParseError as error:
        return [unreadable("xmp", f"XMP packet is not well-formed XML: {error}")]
    return _fields(root)


def _values(root: ET.Element, namespace: str, name: str) -> list[str]:
    """Every value of property ``name``: as an attribute, as element text, or in an rdf list."""
    tag = f"{{{namespace}}}{name}"
    values = [element.attrib[tag] for element in root.iter() if tag in element.attrib]
    for element in root.iter(tag):
        resource = element.attrib.get(f"{{{RDF}}}resource")
        if resource:
            values.append(resource)
        items = [item.text for item in element.iter(f"{{{RDF}}}li") if item.text and item.text.strip()]
        values += items or ([element.text] if element.text and element.text.strip() else [])
    return [value.strip() for value in values][:16]


def _fields(root: ET.Element) -> list[Finding]:
    from aiclassify.evidence.exif import software_kind

    findings = []
    for uri in _values(root, IPTC_EXT, "DigitalSourceType"):
        name = uri.removeprefix(SOURCE_TYPE_PREFIX).rstrip("/")
        ai = name in AI_SOURCE_TYPES
        meaning = (
            "declares generative AI; unsigned metadata that anyone can write, copy or strip, so its "
            "presence is a claim, not proof, and its absence means nothing"
            if ai
            else "declares a non-AI origin; unsigned metadata that anyone can write or copy: not proof "
            "of a camera"
        )
        findings.append(
            Finding(
                "xmp", "digital_source_type", "weak", f"{safe_text(name)} ({safe_text(uri)}): {meaning}", ai
            )
        )
    for field, (code, label) in AI_FIELDS.items():
        for value in _values(root, IPTC_EXT, field)[:1]:
            findings.append(
                Finding(
                    "xmp",
                    code,
                    "weak",
                    f"{label}: {safe_text(value)} (unsigned IPTC generative-AI field)",
                    True,
                )
            )
    for tool in _values(root, XMP_BASIC, "CreatorTool")[:1]:
        kind = software_kind(tool)
        if kind == "generator":
            findings.append(
                Finding(
                    "xmp",
                    "generator_software",
                    "weak",
                    f"CreatorTool {safe_text(tool)}: a known image generator "
                    "(unsigned, easily written or removed)",
                    True,
                )
            )
        else:
            findings.append(
                Finding(
                    "xmp",
                    "creator_tool",
                    "info",
                    f"CreatorTool {safe_text(tool)}: the software that last "
                    "wrote the file; says nothing about how the picture was made",
                )
            )
    return findings
