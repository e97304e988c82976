"""The multipart parser without per-boundary regular expressions finds what Werkzeug's finds."""

from __future__ import annotations

import io
import random
import re

import pytest
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

from aiclassify.serving import multipart
from aiclassify.serving.app import InMemoryRequest

BOUNDARIES = [
    b"x",
    b"-",
    b"--",
    b"a.b+c(d)*",
    b"----WebKitFormBoundary7MA4YWxkTrZu0gW",
    b"aiclassify-3f1c",
    b"a b",
]


def as_tuple(match):
    return None if match is None else (match.start(), match.end(), bytes(match.group(1)))


def random_buffer(rng: random.Random, boundary: bytes) -> bytes:
    tokens = [
        b"\r",
        b"\n",
        b"\r\n",
        b"-",
        b"--",
        b" ",
        b"\t",
        b"\x0b",
        b"x",
        b"\x00",
        boundary,
        b"--" + boundary,
        b"\r\n--" + boundary,
        boundary[:2],
        b"--" + boundary + b"--",
    ]
    return b"".join(rng.choice(tokens) for _ in range(rng.randint(0, 12)))


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_searches_match_werkzeugs_expressions_on_random_buffers(boundary):
    oracle = MultipartDecoder(boundary)  # the installed Werkzeug's own expressions
    fast = multipart.BoundaryDecoder(boundary)
    assert isinstance(oracle.preamble_re, re.Pattern) and isinstance(
        fast.preamble_re, multipart.BoundarySearch
    )
    rng = random.Random(boundary)
    found = 0
    for _ in range(4000):
        buffer = random_buffer(rng, boundary)
        data = bytearray(buffer) if rng.random() < 0.5 else buffer
        pos = rng.randint(0, len(buffer))
        for name in ("preamble_re", "boundary_re"):
            expected = as_tuple(getattr(oracle, name).search(data, pos))
            assert as_tuple(getattr(fast, name).search(data, pos)) == expected, (name, buffer, pos)
            found += expected is not None
    assert found > 500  # the random buffers do exercise matches, not only misses


def test_the_decoder_keeps_werkzeugs_state_and_compiles_nothing_per_boundary(monkeypatch):
    compiled = []
    original = re.compile
    monkeypatch.setattr(
        re, "compile", lambda pattern, flags=0: compiled.append(pattern) or original(pattern, flags)
    )
    fast = multipart.BoundaryDecoder(b"new-boundary-1234", max_form_memory_size=10, max_parts=3)
    assert not [p for p in compiled if b"new-boundary-1234" in p]
    reference = MultipartDecoder(b"new-boundary-1234", max_form_memory_size=10, max_parts=3)
    assert set(vars(fast)) == set(vars(reference))  # a new Werkzeug attribute would show here
    for name in vars(reference):
        if name not in ("preamble_re", "boundary_re"):
            assert getattr(fast, name) == getattr(reference, name), name


def body(parts, boundary: bytes, rng: random.Random) -> bytes:
    """A multipart body with a random line break style, preamble and epilogue."""
    line = rng.choice([b"\r\n", b"\n", b"\r\n", b"\r"])
    out = rng.choice([b"", b"preamble" + line])
    for name, filename, data in parts:
        disposition = b'form-data; name="%s"' % name
        if filename is not None:
            disposition += b'; filename="%s"' % filename
        out += b"--" + boundary + rng.choice([b"", b" \t"]) + line
        out += b"Content-Disposition: " + disposition + line
        if filename is not None:
            out += b"Content-Type: image/jpeg" + line
        out += line + data + line
    out += b"--" + boundary + b"--" + rng.choice([b"", line, line + b"epilogue"])
    return out


def parse(parser_class, data: bytes, boundary: bytes, buffer_size: int):
    parser = parser_class(buffer_size=buffer_size, max_form_memory_size=10_000, max_form_parts=20)
    try:
        form, files = parser.parse(io.BytesIO(data), boundary, len(data))
    except Exception as error:  # noqa: BLE001 - the same error is the expected outcome
        return type(error).__name__
    return (list(form.items(multi=True)), [(k, f.filename, f.read()) for k, f in files.items(multi=True)])


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_whole_bodies_parse_exactly_as_with_werkzeug(boundary):
    rng = random.Random(boundary + b"bodies")
    payloads = [
        b"",
        b"\xff\xd8\xff\xe0JFIF",
        b"--" + boundary,
        b"a\r\n--" + boundary[:1],
        b"\r\n\r\n",
        b"x" * 300,
    ]
    outcomes = set()
    for _ in range(300):
        parts = [
            (rng.choice([b"file", b"files", b"model"]), rng.choice([None, b"a.jpg"]), rng.choice(payloads))
            for _ in range(rng.randint(0, 3))
        ]
        data = body(parts, boundary, rng)
        if rng.random() < 0.2:  # truncated or corrupted bodies must fail the same way
            cut = rng.randint(0, len(data))
            data = data[:cut] + rng.choice([b"", b"\r\n", b"--" + boundary])
        size = rng.choice([7, 16, 64, 65536])
        expected = parse(formparser.MultiPartParser, data, boundary, size)
        assert parse(multipart.MultiPartParser, data, boundary, size) == expected, (data, size)
        outcomes.add(type(expected).__name__)
    assert outcomes == {"tuple", "str"}  # both parsed bodies and errors were compared


def test_the_api_request_class_uses_the_fast_parser():
    from werkzeug.test import EnvironBuilder

    data = b'--b1\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nJPEG\r\n--b1--\r\n'
    environ = EnvironBuilder(
        method="POST", data=data, content_type="multipart/form-data; boundary=b1"
    ).get_environ()
    request = InMemoryRequest(environ)
    assert isinstance(request.make_form_data_parser(), multipart.FormDataParser)
    assert request.files["file"].filename == "a.jpg" and request.files["file"].read() == b"JPEG"
