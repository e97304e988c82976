"""aiclassify.logs: one log line per record, whatever a client sent."""

from __future__ import annotations

import logging

from aiclassify.logs import LOG_FORMAT, EscapingFormatter, printable


def record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("aiclassify.test", logging.INFO, __file__, 1, message, args, exc_info)


def test_printable_escapes_what_could_break_or_fake_a_line():
    assert printable("GET /a\nb\r\x1b[31m\u2028\x85\t") == "GET /a\\x0ab\\x0d\\x1b[31m\\u2028\\x85\\x09"
    assert printable("/a b\\c", also=" \\") == "/a\\x20b\\x5cc"
    assert printable("/caf\u00e9/\U0001f600") == "/caf\u00e9/\U0001f600"  # printable text stays as it is


def test_formatter_writes_one_line_per_record_and_indents_tracebacks():
    formatter = EscapingFormatter(LOG_FORMAT)
    line = formatter.format(record("%s %s", "GET", "/x\n2026-01-01 00:00:00,000 INFO forged"))
    assert "\n" not in line and line.endswith("GET /x\\x0a2026-01-01 00:00:00,000 INFO forged")
    try:
        raise ValueError("bad\nforged line\x1b[2J")
    except ValueError as error:
        text = formatter.format(record("failed", exc_info=(type(error), error, error.__traceback__)))
    first, *rest = text.splitlines()
    assert first.endswith("INFO aiclassify.test: failed") and rest
    assert all(line.startswith("    ") for line in rest)  # only a record starts in the first column
    assert "\x1b" not in text and "    forged line\\x1b[2J" in text
