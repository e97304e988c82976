"""Bounded walks over the metadata of JPEG, PNG and WebP files: XMP packets, EXIF blocks, text.

No pixel is decoded and nothing is trusted: at most :data:`MAX_SEGMENTS` segments or chunks are
visited, a block longer than the bytes left is reported as truncated, a text or XMP block over
:data:`MAX_BLOCK_BYTES` is not read (noted instead), and compressed PNG text (``zTXt``, compressed
``iTXt``) is inflated to at most :data:`MAX_BLOCK_BYTES`. Problems become ``notes``, never exceptions.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAX_SEGMENTS = 4096  # JPEG segments, PNG chunks or WebP chunks visited per file
MAX_BLOCK_BYTES = 1 << 20  # the largest XMP packet, EXIF block or text value read (1 MiB)
MAX_TEXT_BLOCKS = 64  # text values kept per file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXIF_HEADER = b"Exif\x00\x00"
PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")
PNG_XMP_KEYWORD = "XML:com.adobe.xmp"
# Chunk header layout per format: struct format, whether the 4-byte kind comes first, and the bytes
# after a chunk's body (PNG: a 4-byte CRC; RIFF: a pad byte after an odd-sized body).
CHUNK_LAYOUTS: dict[str, tuple[str, bool, Callable[[int], int]]] = {
    "PNG": (">I4s", False, lambda length: 4),
    "WebP": ("<4sI", True, lambda length: length & 1),
}


@dataclass
class Container:
    """What the walk found; ``notes`` are (source, reason) pairs for the ``unreadable`` findings."""

    format: str | None = None  # JPEG, PNG, WebP or None (not one of these)
    xmp: list[bytes] = field(default_factory=list)
    exif: list[bytes] = field(default_factory=list)
    texts: list[tuple[str, bytes]] = field(default_factory=list)  # (keyword, raw value)
    notes: list[tuple[str, str]] = field(default_factory=list)

    def add_text(self, keyword: str, value: bytes) -> None:
        if len(self.texts) >= MAX_TEXT_BLOCKS:
            if not any(reason.startswith("more than") for _, reason in self.notes):
                self.notes.append(
                    ("text_chunks", f"more than {MAX_TEXT_BLOCKS} text blocks; the rest skipped")
                )
            return
        self.texts.append((keyword, value))


def scan(data: bytes) -> Container:
    """Walk ``data``'s metadata blocks (never raises)."""
    if data.startswith(PNG_SIGNATURE):
        container = Container("PNG")
        walk = _walk_png
    elif data.startswith(b"\xff\xd8"):
        container = Container("JPEG")
        walk = _walk_jpeg
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        container = Container("WebP")
        walk = _walk_webp
    else:
        return Container()
    try:
        walk(data, container)
    except Exception as error:  # a bug or an unforeseen layout: what was found so far stays
        container.notes.append(("text_chunks", f"metadata walk stopped: {type(error).__name__}"))
    return container


def _too_big(container: Container, source: str, what: str, size: int) -> bool:
    if size > MAX_BLOCK_BYTES:
        container.notes.append((source, f"{what} of {size} bytes, over the {MAX_BLOCK_BYTES}-byte limit"))
        return True
    return False


def _walk_jpeg(data: bytes, container: Container) -> None:
    position, count = 2, 0
    while position + 4 <= len(data):
        count += 1
        if count > MAX_SEGMENTS:
            container.notes.append(
                ("text_chunks", f"more than {MAX_SEGMENTS} JPEG segments; the rest skipped")
            )
            return
        if data[position] != 0xFF:
            return  # not a marker: stop (entropy-coded data or garbage)
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after this
            return
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        body = data[position + 4 : position + 2 + length]
        if length < 2 or len(body) < length - 2:
            container.notes.append(("text_chunks", f"JPEG segment 0x{marker:02X} truncated"))
            return
        if marker == 0xE1 and body.startswith(EXIF_HEADER):
            container.exif.append(body)
        elif marker == 0xE1 and body.startswith(XMP_JPEG_HEADER):
            container.xmp.append(body[len(XMP_JPEG_HEADER) :])
        elif marker == 0xFE:
            container.add_text("JPEG comment", body)
        position += 2 + length


def _chunks(
    data: bytes, container: Container, position: int, file_format: str
) -> Iterator[tuple[bytes, bytes]]:
    """``(kind, body)`` of each chunk of a PNG or WebP (RIFF) file, at most ``MAX_SEGMENTS`` of them;
    a truncated chunk ends the walk with a note."""
    header, kind_first, trailer = CHUNK_LAYOUTS[file_format]
    count = 0
    while position + 8 <= len(data):
        count += 1
        if count > MAX_SEGMENTS:
            container.notes.append(
                ("text_chunks", f"more than {MAX_SEGMENTS} {file_format} chunks; the rest skipped")
            )
            return
        first, second = struct.unpack(header, data[position : position + 8])
        kind, length = (first, second) if kind_first else (second, first)
        body = data[position + 8 : position + 8 + length]
        if len(body) < length:
            container.notes.append(("text_chunks", f"{file_format} chunk {_name(kind)} truncated"))
            return
        position += 8 + length + trailer(length)
        yield kind, body


def _walk_png(data: bytes, container: Container) -> None:
    for kind, body in _chunks(data, container, len(PNG_SIGNATURE), "PNG"):
        if kind == b"IEND":
            return
        if kind == b"eXIf":
            if not _too_big(container, "exif", "EXIF block", len(body)):
                container.exif.append(body)
        elif kind in PNG_TEXT:
            if _too_big(container, "text_chunks", f"PNG {_name(kind)} chunk", len(body)):
                continue
            parsed = _png_text(kind, body, container)
            if parsed is None:
                continue
            keyword, value = parsed
            if keyword == PNG_XMP_KEYWORD:
                container.xmp.append(value)
            else:
                container.add_text(keyword, value)


def _name(kind: bytes) -> str:
    return kind.decode("latin-1").encode("unicode_escape").decode("ascii")


def _png_text(kind: bytes, body: bytes, container: Container) -> tuple[str, bytes] | None:
    """(keyword, value bytes) of a tEXt/zTXt/iTXt chunk, or None (noted) when malformed."""
    keyword, sep, rest = body.partition(b"\x00")
    name = keyword[:79].decode("latin-1")
    if not sep:
        container.notes.append(("text_chunks", f"PNG {_name(kind)} chunk without a keyword separator"))
        return None
    if kind == b"tEXt":
        return name, rest
    if kind == b"zTXt":
        return _inflated(name, rest[1:], container)
    # iTXt: compression flag, method, language tag \0, translated keyword \0, text
    if len(rest) < 2:
        container.notes.append(("text_chunks", f"PNG iTXt chunk {name!r} truncated"))
        return None
    compressed = rest[0] == 1
    _, _, rest = rest[2:].partition(b"\x00")
    _, _, text = rest.partition(b"\x00")
    return _inflated(name, text, container) if compressed else (name, text)


def _inflated(name: str, raw: bytes, container: Container) -> tuple[str, bytes] | None:
    try:
        inflater = zlib.decompressobj()
        value = inflater.decompress(raw, MAX_BLOCK_BYTES)
    except zlib.error as error:
        container.notes.append(("text_chunks", f"compressed PNG text {name!r} is corrupt: {error}"))
        return None
    if inflater.unconsumed_tail:
        container.notes.append(
            ("text_chunks", f"compressed PNG text {name!r} inflates past {MAX_BLOCK_BYTES} bytes; cut there")
        )
    return name, value


def _walk_webp(data: bytes, container: Container) -> None:
    for kind, body in _chunks(data, container, 12, "WebP"):
        length = len(body)
        if kind == b"EXIF" and not _too_big(container, "exif", "EXIF block", length):
            container.exif.append(body)
        elif kind == b"XMP " and not _too_big(container, "xmp", "XMP packet", length):
            container.xmp.append(body)
