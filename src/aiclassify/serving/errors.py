"""The one error type the API raises on purpose (an HTTP status and a message for the client), and the
helpers that quote a client's input in such a message without echoing it whole."""

from __future__ import annotations

import reprlib
from typing import Any

MAX_ECHOED_CHARS = 64  # of a client's value quoted back in an error message


# The short reason a refused request is counted under on /metrics when the error names none.
STATUS_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    503: "unavailable",
}


def reason_for_status(status: int) -> str:
    """The default short reason for an error ``status``: ``not_found`` for 404..."""
    return STATUS_REASONS.get(status, "server_error" if status >= 500 else "client_error")


class ApiError(Exception):
    """A request the server answers with ``status`` and ``{"error": message}``.

    ``reason`` is a short fixed label (``not_an_image``, ``unknown_model``...) under which
    ``/metrics`` counts the refusal; by default one derived from the status.
    """

    def __init__(self, status: int, message: str, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or reason_for_status(status)


def shorten(text: str, limit: int = MAX_ECHOED_CHARS) -> str:
    """``text`` as an error message quotes it: its first ``limit`` characters and ``...`` when longer."""
    return text if len(text) <= limit else text[:limit] + "..."


def quoted(value: Any) -> str:
    """A client's value as an error message quotes it: the repr of a string :func:`shorten`-ed first, of
    anything else bounded in depth and length (a deeply nested list never recurses)."""
    if isinstance(value, str):
        return repr(shorten(value))
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother = 3, MAX_ECHOED_CHARS, MAX_ECHOED_CHARS
    return shorten(bounded.repr(value))
