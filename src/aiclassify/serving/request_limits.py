"""The limits a request must fit, checked before or while the app reads it, each refusal naming the limit
it hit: the body size (``AICLASSIFY_MAX_UPLOAD_MB``, whether or not the body declares a
``Content-Length``), the parts and fields of a multipart body (``AICLASSIFY_MAX_FORM_PARTS``,
``AICLASSIFY_MAX_FORM_FIELD_KB``), and the request target and header sizes (``AICLASSIFY_MAX_URL_BYTES``,
``AICLASSIFY_MAX_HEADER_BYTES``), which sit below gunicorn's own limits so that the app, not gunicorn,
answers them (with JSON)."""

from __future__ import annotations

import io
from typing import IO

from flask import Request
from werkzeug.exceptions import BadRequest, ClientDisconnected, HTTPException, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from aiclassify.serving.errors import ApiError, quoted, shorten
from aiclassify.serving.settings import ServerSettings

READ_STEP = 64 * 1024  # bytes read from the client at a time when the app buffers or discards a body


class BodyTooLarge(RequestEntityTooLarge):
    """The request body is larger than ``AICLASSIFY_MAX_UPLOAD_MB``, as declared or as sent."""


def read_at_most(stream: IO[bytes], size: int) -> bytes:
    """The first ``size`` bytes of ``stream`` (fewer when it ends first), never reading past them."""
    chunks, received = [], 0
    while received < size:
        chunk = stream.read(min(READ_STEP, size - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def body_stream(request: Request) -> IO[bytes]:
    """The request body, refused with :class:`BodyTooLarge` when it is over ``max_content_length``.

    A declared ``Content-Length`` over the limit is refused before anything is read. A body without
    one (``Transfer-Encoding: chunked``, which gunicorn decodes and marks ``wsgi.input_terminated``) is
    read into memory here, at most the limit plus one byte: Werkzeug's own stream would stop at the
    limit without a word, so the app would see the body cut short instead of refusing it. A multipart
    body comes back wrapped in a :class:`PartCountingStream`.
    """
    limit = request.max_content_length
    declared = request.content_length
    if limit is not None and declared is not None and declared > limit:
        raise BodyTooLarge()
    if limit is not None and declared is None and request.environ.get("wsgi.input_terminated"):
        try:
            body = read_at_most(request.input_stream, limit + 1)
        except OSError as error:  # the client went away, or was silent for the socket timeout
            raise ClientDisconnected() from error
        except Exception as error:  # the server's own error for a malformed chunk
            raise BadRequest(f"the chunked request body is malformed: {shorten(str(error))}") from error
        if len(body) > limit:
            raise BodyTooLarge()
        stream: IO[bytes] = io.BytesIO(body)
    else:
        stream = get_input_stream(request.environ, max_content_length=limit)
    boundary = request.mimetype_params.get("boundary") if request.mimetype == "multipart/form-data" else None
    return PartCountingStream(stream, boundary.encode("latin-1")) if boundary else stream


class PartCountingStream(io.RawIOBase):
    """A multipart body that counts the parts it has passed on, so that a 413 raised by the form parser
    can say whether it was the parts limit (more parts read than allowed) or the field size limit.

    A part starts at each ``CRLF--boundary`` that is not the closing ``CRLF--boundary--`` (the first
    one may open the body without a line break before it).
    """

    def __init__(self, stream: IO[bytes], boundary: bytes):
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary
        self._window = b"\r\n"  # unsearched bytes: a delimiter may straddle two reads
        self.parts = 0

    def readable(self) -> bool:
        """Always: it is an input stream."""
        return True

    def readinto(self, buffer) -> int:
        """Read into ``buffer`` from the wrapped stream, counting the parts that start in what came."""
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self._count(data)
        return len(data)

    def _count(self, data: bytes) -> None:
        window = self._window + data
        needed = len(self._delimiter) + 2  # the delimiter and the two bytes that tell a closing one
        start = 0
        while (found := window.find(self._delimiter, start)) != -1 and found + needed <= len(window):
            if window[found + len(self._delimiter) : found + needed] != b"--":
                self.parts += 1
            start = found + len(self._delimiter)
        self._window = window[max(start, len(window) - needed + 1) :]


def too_large(error: RequestEntityTooLarge, request: Request, settings: ServerSettings) -> tuple[str, str]:
    """Which limit a 413 request went over, as ``(reason, message)``: the short reason counted on
    ``/metrics``, and what the answer says (the limit and the variable that sets it)."""
    body = (
        "body_too_large",
        f"request body larger than the {settings.max_upload_mb:g} MB limit (AICLASSIFY_MAX_UPLOAD_MB)",
    )
    if isinstance(error, BodyTooLarge) or request.mimetype != "multipart/form-data":
        return body
    try:
        stream = request.stream  # computed once, when the form parser began: the parts it has read
    except RequestEntityTooLarge:
        return body
    if isinstance(stream, PartCountingStream) and stream.parts > settings.max_form_parts:
        return (
            "too_many_form_parts",
            f"multipart body with more than {settings.max_form_parts} parts (AICLASSIFY_MAX_FORM_PARTS)",
        )
    return (
        "form_field_too_large",
        f"multipart form field (not a file) larger than the {settings.max_form_field_kb:g} KB limit "
        "(AICLASSIFY_MAX_FORM_FIELD_KB)",
    )


def check_request_head(request: Request, settings: ServerSettings) -> None:
    """414 when the request target is longer than ``max_url_bytes``, 431 when a header field (name and
    value; repeated fields as the server joined them) is longer than ``max_header_bytes``."""
    environ = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
    if len(target) > settings.max_url_bytes:
        raise ApiError(
            414,
            f"request target longer than {settings.max_url_bytes} bytes (AICLASSIFY_MAX_URL_BYTES)",
            reason="uri_too_long",
        )
    for name, value in request.headers.items():
        if len(name) + len(value) > settings.max_header_bytes:
            raise ApiError(
                431,
                f"header {quoted(name)} longer than {settings.max_header_bytes} bytes "
                "(AICLASSIFY_MAX_HEADER_BYTES)",
                reason="header_too_large",
            )


def check_content_encoding(request: Request) -> None:
    """415 when a request to a route that reads a body (a POST route) declares a ``Content-Encoding``
    other than ``identity``, or a ``Transfer-Encoding`` with a coding besides ``chunked`` (gunicorn
    takes ``gzip, chunked`` and removes only the chunking): the app does not decompress bodies, and
    would otherwise read the compressed bytes as the JSON or image itself (a 400 or 422 that does not
    say why)."""
    if request.url_rule is None or "POST" not in (request.url_rule.methods or ()):
        return
    for header, plain in (("Content-Encoding", {"", "identity"}), ("Transfer-Encoding", {"", "chunked"})):
        value = request.headers.get(header, "")
        if any(coding.strip(" \t").lower() not in plain for coding in value.split(",")):
            raise ApiError(
                415,
                f"{header} {quoted(value)} is not supported: send the body uncompressed",
                reason="unsupported_content_encoding",
            )


def discard_unread_body(request: Request) -> None:
    """Read and drop what is left of a body the app did not read (one it refused unread: 401, 404, 413
    of a form limit...), so that the connection can carry the client's next request: gunicorn drains
    at most 64 KB itself and otherwise closes the connection after announcing keep-alive.

    Only a body with a ``Content-Length`` within the limit is read, so at most that many bytes; a
    larger or chunked one is left, and gunicorn closes that connection (and says so, see
    ``gunicorn_config.pre_request``). A client that stops sending meanwhile ends the read (the socket
    timeout); gunicorn then closes the connection.
    """
    declared = request.content_length
    limit = request.max_content_length
    if not declared or (limit is not None and declared > limit):
        return
    try:
        stream = request.stream
        while stream.read(READ_STEP):
            pass
    except (HTTPException, OSError, ValueError):
        return
