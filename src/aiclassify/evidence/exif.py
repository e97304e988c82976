"""EXIF: Software, Make/Model, DateTimeOriginal, and the generator and editor software lists.

``Software`` (and XMP ``CreatorTool``) is matched, case-insensitively, against two documented lists
of substrings:

- :data:`GENERATOR_SOFTWARE`: image generators whose name in ``Software`` says the file came out of
  one: ``weak`` (anyone can write the field) and counted by the ``declared`` rule as unsigned
  metadata;
- :data:`EDITOR_SOFTWARE`: editors and raw converters: ``info``, the file passed through one, which
  says nothing about whether the picture is real or generated.

Camera EXIF (``Make``, ``Model``, ``DateTimeOriginal``) is **weak** evidence of a camera capture:
generators and people can write it, and it is copied along when an image is edited. Its absence is
**no evidence at all**: most web sites, messengers and editors strip EXIF. The findings say so.
"""

from __future__ import annotations

from PIL import Image

from aiclassify.evidence.findings import Finding, decode_text, safe_text, unreadable

GENERATOR_SOFTWARE = (
    "adobe firefly",
    "automatic1111",
    "stable diffusion",
    "stablediffusion",
    "comfyui",
    "invokeai",
    "novelai",
    "midjourney",
    "dall-e",
    "dall·e",
    "openai",
    "google imagen",
    "gemini",
    "bing image creator",
    "microsoft designer",
    "leonardo.ai",
    "ideogram",
    "dreamstudio",
    "fooocus",
    "forge",
    "flux",
    "runway",
    "playground ai",
    "nightcafe",
    "craiyon",
)
EDITOR_SOFTWARE = (
    "adobe photoshop",
    "lightroom",
    "camera raw",
    "gimp",
    "affinity",
    "pixelmator",
    "snapseed",
    "capture one",
    "darktable",
    "rawtherapee",
    "paint.net",
    "canva",
    "picasa",
    "apple photos",
    "google photos",
    "instagram",
)

SOFTWARE, MAKE, MODEL, DATETIME = 0x0131, 0x010F, 0x0110, 0x0132
EXIF_IFD, DATETIME_ORIGINAL, USER_COMMENT = 0x8769, 0x9003, 0x9286


def software_kind(software: str) -> str | None:
    """``generator``, ``editor`` or None for a Software/CreatorTool string."""
    lowered = software.lower()
    if any(name in lowered for name in GENERATOR_SOFTWARE):
        return "generator"
    if any(name in lowered for name in EDITOR_SOFTWARE):
        return "editor"
    return None


def read_exif(blocks: list[bytes]) -> tuple[list[Finding], list[bytes]]:
    """The findings of a file's EXIF blocks, and its UserComment values (for text_chunks)."""
    findings: list[Finding] = []
    comments: list[bytes] = []
    camera = False
    for block in blocks[:4]:
        try:
            exif = Image.Exif()
            exif.load(block)
            sub = exif.get_ifd(EXIF_IFD)
        except Exception as error:  # Pillow raises struct.error, ValueError, SyntaxError...
            findings.append(unreadable("exif", f"EXIF block: {type(error).__name__}: {error}"))
            continue
        software = _text(exif.get(SOFTWARE))
        if software:
            findings.append(_software(software))
        make, model = _text(exif.get(MAKE)), _text(exif.get(MODEL))
        taken = _text(sub.get(DATETIME_ORIGINAL))
        if make or model or taken:
            camera = True
            what = " ".join(part for part in (make, model) if part) or "no make or model"
            findings.append(
                Finding(
                    "exif",
                    "camera_exif",
                    "weak",
                    f"camera EXIF: {safe_text(what)}"
                    + (f", taken {safe_text(taken)}" if taken else "")
                    + ": weak evidence of a camera capture; EXIF is easily written, copied from another "
                    "photo, or kept through edits",
                )
            )
        comment = sub.get(USER_COMMENT)
        if isinstance(comment, bytes) and comment:
            comments.append(comment)
    if not camera:
        findings.append(
            Finding(
                "exif",
                "no_camera_exif",
                "info",
                "no camera EXIF (make, model, capture time): no evidence either way; most web sites, "
                "messengers and editors remove it",
            )
        )
    return findings, comments


def _software(software: str) -> Finding:
    kind = software_kind(software)
    if kind == "generator":
        return Finding(
            "exif",
            "generator_software",
            "weak",
            f"Software {safe_text(software)}: a known image generator (unsigned, easily written or removed)",
            True,
        )
    if kind == "editor":
        return Finding(
            "exif",
            "editor_software",
            "info",
            f"Software {safe_text(software)}: an image editor; the file passed through it, which says "
            "nothing about whether the picture is real or generated",
        )
    return Finding(
        "exif",
        "software",
        "info",
        f"Software {safe_text(software)}: the software that wrote the file (not on the generator list)",
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = decode_text(value)
    if not isinstance(value, str):
        return ""
    return value.strip("\x00 ").strip()
