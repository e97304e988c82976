"""What an upload's container says about it, read from the bytes alone before anything is decoded.

- :func:`jpeg_scan_starts`: where each scan of a JPEG begins. A progressive JPEG is decoded scan by
  scan, each scan a pass over the whole image, so a small file with thousands of scans costs tens
  of seconds; the server limits their number before decoding, and paces Pillow's decoder one scan
  at a time to check the decode budget between scans (:mod:`aiclassify.serving.decode_budget`).
- :func:`png_truncation` and :func:`gif_truncation`: whether a PNG ends before its ``IEND`` chunk
  is complete (CRC included) and a GIF before its trailer. Pillow and TensorFlow both decode such
  files from the pixel data they do have, but a detector must not score part of a file: the server
  rejects them. Bytes after ``IEND`` or after the trailer are allowed.

Each walk is linear in the size of the data and never raises on malformed input.
"""

from __future__ import annotations

import re
import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8"

_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff]")  # 0xFF 0x00 is a stuffed data byte, 0xFF 0xFF fill
_JPEG_END = 0xD9
_JPEG_SCAN = 0xDA
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field

_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, 0x3B
_GIF_BLOCK = re.compile(rb"[\x21\x2c\x3b]")


def jpeg_scan_starts(data: bytes) -> list[int]:
    """The offsets of the JPEG's start-of-scan (SOS) markers, up to its first end-of-image marker.

    Marker segments are skipped by their length; inside entropy-coded data and in bytes between
    segments, the next marker is searched for, as libjpeg does, so a scan cannot hide behind
    padding or garbage. Empty when ``data`` does not start like a JPEG.
    """
    if not data.startswith(JPEG_START):
        return []
    starts = []
    position = len(JPEG_START)
    while (found := _JPEG_MARKER.search(data, position)) is not None:
        start = found.start()
        code = data[start + 1]
        if code == _JPEG_END:
            break
        if code in _JPEG_STANDALONE:
            position = start + 2
            continue
        if start + 4 > len(data):
            break
        (length,) = struct.unpack_from(">H", data, start + 2)
        if code == _JPEG_SCAN:
            starts.append(start)
        position = start + 2 + max(length, 2)
    return starts


def png_truncation(data: bytes) -> str | None:
    """Why the PNG is incomplete (its chunks end before a whole ``IEND`` chunk), or None."""
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length  # length and type, data, CRC
        if end > len(data):
            return f"its {kind.decode('latin-1')!r} chunk is cut short"
        if kind == b"IEND":
            return None
        position = end
    return "it ends before its IEND chunk"


def gif_truncation(data: bytes) -> str | None:
    """Why the GIF is incomplete (it ends inside a block or before its trailer), or None.

    Bytes between blocks that start none are skipped, as Pillow skips them.
    """
    if len(data) < 13:
        return "it ends inside its header"
    position = 13 + _colour_table_size(data[10])
    while True:
        found = _GIF_BLOCK.search(data, position)
        if found is None:
            return "it ends before its trailer"
        introducer, position = data[found.start()], found.start() + 1
        if introducer == _GIF_TRAILER:
            return None
        if introducer == _GIF_EXTENSION:
            position += 1  # the extension's label
        else:  # image descriptor: left, top, width, height, flags; then the LZW minimum code size
            if position + 9 > len(data):
                return "it ends inside an image descriptor"
            position += 9 + _colour_table_size(data[position + 8]) + 1
        position = _skip_sub_blocks(data, position)
        if position > len(data):
            return "it ends inside a block"


def _colour_table_size(flags: int) -> int:
    """Bytes of the colour table a GIF screen or image descriptor's flags announce."""
    return 3 * (2 << (flags & 0x07)) if flags & 0x80 else 0


def _skip_sub_blocks(data: bytes, position: int) -> int:
    """The offset after a chain of data sub-blocks and its terminator; past the end when cut short."""
    while position < len(data):
        size = data[position]
        position += 1 + size
        if size == 0:
            return position
    return len(data) + 1
