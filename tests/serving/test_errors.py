"""Quoting a client's input in an error message: bounded, whatever the client sent."""

from __future__ import annotations

from aiclassify.serving.errors import MAX_ECHOED_CHARS, quoted, shorten


def test_shorten_keeps_the_first_characters():
    assert shorten("faces") == "faces"
    assert shorten("x" * MAX_ECHOED_CHARS) == "x" * MAX_ECHOED_CHARS
    assert shorten("ab" * 1_000_000) == ("ab" * MAX_ECHOED_CHARS)[:MAX_ECHOED_CHARS] + "..."


def test_quoted_bounds_strings_and_nested_values():
    assert quoted("faces") == "'faces'"
    assert quoted("x" * 1_000_000) == repr("x" * MAX_ECHOED_CHARS + "...")
    nested: list = []
    for _ in range(100_000):  # far deeper than repr() could recurse
        nested = [nested]
    assert len(quoted(nested)) <= MAX_ECHOED_CHARS + 3
    assert len(quoted({"key": "y" * 1_000_000, "list": list(range(1_000_000))})) <= MAX_ECHOED_CHARS + 3
    assert quoted(["", "0.5"]) == "['', '0.5']"
