"""The one error type the API raises on purpose: an HTTP status and a message for the client."""

from __future__ import annotations


class ApiError(Exception):
    """A request the server answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
