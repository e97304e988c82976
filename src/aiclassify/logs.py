"""Logging set-up shared by the command-line entry points."""

from __future__ import annotations

import logging
import os

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def printable(text: str, also: str = "") -> str:
    """``text`` with every character that is not printable (line breaks, terminal escape codes, other
    control and separator characters) and every character in ``also`` written as a backslash escape
    (``\\x0a``, ``\\x1b``, ``\\u2028``): a log line that quotes it stays one line and writes
    nothing a terminal would act on."""
    return "".join(_escaped(char) if not char.isprintable() or char in also else char for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


class EscapingFormatter(logging.Formatter):
    """Log records as one line each, whatever they quote: the message goes through :func:`printable`,
    and every line of a traceback is indented, so a line that starts in the first column always
    starts a record."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        """The formatted line, its non-printable characters escaped."""
        return printable(super().formatMessage(record))

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        """The traceback, each line indented and its non-printable characters escaped."""
        return "\n".join("    " + printable(line) for line in super().formatException(ei).splitlines())

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging's name)
        """The stack, each line indented and its non-printable characters escaped."""
        return "\n".join("    " + printable(line) for line in stack_info.splitlines())


def setup_logging(level: int = logging.INFO) -> None:
    """Timestamped log lines on stderr (:class:`EscapingFormatter`: one line per record whatever a
    client sent), and TensorFlow's C++ chatter turned down. Does nothing to a root logger that already
    has handlers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
