"""Werkzeug's multipart parser without its per-request regular-expression compile.

Werkzeug's ``MultipartDecoder`` compiles two regular expressions that embed the request's
boundary. Clients (curl, requests, browsers) pick a new random boundary for every request, so
Python's ``re`` cache never hits and every upload pays about 0.6 ms of pure-Python, GIL-holding
``re`` parsing and compiling: as much as the rest of the multipart parsing and the Pillow checks
together, for a small image.

:class:`BoundarySearch` finds exactly what those expressions find (the boundary marker with
``bytes.find``, the line-break prefix by hand, the suffix with one expression compiled once), and
:class:`FormDataParser` runs Werkzeug's own parsing code with a decoder that uses it. Nothing else
changes: the same events, limits and errors. ``tests/test_multipart.py`` checks the searches
against the expressions of the installed Werkzeug on random buffers, and whole bodies against
Werkzeug's parser.
"""

from __future__ import annotations

import re
import types
from typing import Any

from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

LINE_BREAK = b"(?:\r\n|\n|\r)"  # as werkzeug.sansio.multipart.LINE_BREAK
HORIZONTAL_SPACE = rb"[^\S\n\r]"
# What follows the boundary marker in Werkzeug's two expressions (their group 1).
TAIL_RE = re.compile(
    rb"(--%s*%s?|%s*%s)" % (HORIZONTAL_SPACE, LINE_BREAK, HORIZONTAL_SPACE, LINE_BREAK), re.MULTILINE
)
PLACEHOLDER_BOUNDARY = b"aiclassify-placeholder"  # Werkzeug compiles its expressions for this once


class BoundaryMatch:
    """The part of ``re.Match`` that Werkzeug's decoder uses: ``start``, ``end``, ``group``."""

    __slots__ = ("_start", "_end", "_tail")

    def __init__(self, start: int, end: int, tail: bytes):
        self._start, self._end, self._tail = start, end, tail

    def start(self) -> int:
        """Where the match begins (at the line break before the marker, when there is one)."""
        return self._start

    def end(self) -> int:
        """Where the match ends."""
        return self._end

    def group(self, index: int = 0) -> bytes:
        """Group 1: what follows the marker (``--`` for the closing boundary); 0 is unsupported."""
        if index != 1:
            raise IndexError("only group 1 is available")
        return self._tail


class BoundarySearch:
    """``re.compile(rb"LB?--BOUNDARY(TAIL)").search`` (``LB`` required when ``line_break_required``)
    without compiling an expression per boundary; ``LB`` and ``TAIL`` as in Werkzeug."""

    def __init__(self, boundary: bytes, line_break_required: bool):
        self.marker = b"--" + boundary
        self.line_break_required = line_break_required

    def search(self, buffer: bytes | bytearray, pos: int = 0) -> BoundaryMatch | None:
        """The leftmost match starting at or after ``pos``, or None."""
        index = buffer.find(self.marker, pos)
        while index != -1:
            start = self._start(buffer, index, pos)
            if start is not None:
                tail = TAIL_RE.match(buffer, index + len(self.marker))
                if tail is not None:
                    return BoundaryMatch(start, tail.end(), bytes(tail.group(1)))
            index = buffer.find(self.marker, index + 1)
        return None

    def _start(self, buffer: bytes | bytearray, index: int, pos: int) -> int | None:
        """Where a match around the marker at ``index`` starts: the earliest line break before it."""
        if index - 2 >= pos and buffer[index - 2 : index] == b"\r\n":
            return index - 2
        if index - 1 >= pos and buffer[index - 1] in b"\r\n":
            return index - 1
        return None if self.line_break_required else index


class BoundaryDecoder(MultipartDecoder):
    """Werkzeug's decoder with :class:`BoundarySearch` in place of its per-boundary expressions."""

    def __init__(self, boundary: bytes, *args: Any, **kwargs: Any):
        if b"\r" in boundary or b"\n" in boundary:  # never valid; keep Werkzeug's exact behaviour
            super().__init__(boundary, *args, **kwargs)
            return
        super().__init__(PLACEHOLDER_BOUNDARY, *args, **kwargs)  # cached expressions: cheap
        self.boundary = boundary
        self.preamble_re = BoundarySearch(boundary, line_break_required=False)
        self.boundary_re = BoundarySearch(boundary, line_break_required=True)


def _rebind(function: types.FunctionType, **names: Any) -> types.FunctionType:
    """``function`` (Werkzeug's code, unchanged) with some of its global names bound to ``names``."""
    namespace = {**function.__globals__, **names}
    rebound = types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__, function.__closure__
    )
    rebound.__kwdefaults__ = function.__kwdefaults__
    rebound.__doc__ = function.__doc__
    return rebound


class MultiPartParser(formparser.MultiPartParser):
    """Werkzeug's ``MultiPartParser.parse``, run with :class:`BoundaryDecoder`."""

    parse = _rebind(formparser.MultiPartParser.parse, MultipartDecoder=BoundaryDecoder)


class FormDataParser(formparser.FormDataParser):
    """Werkzeug's form parser; multipart bodies go through :class:`MultiPartParser`."""

    _parse_multipart = _rebind(formparser.FormDataParser._parse_multipart, MultiPartParser=MultiPartParser)
