"""aiclassify.serving.gunicorn_config: its hooks and log filter, without starting gunicorn (the module
served by a real gunicorn: test_gunicorn.py)."""

from __future__ import annotations

import errno
import logging
import socket
import struct
from types import SimpleNamespace

import pytest

from aiclassify.serving import gunicorn_config
from aiclassify.serving.settings import SettingsError


class FakeRequest:
    """What ``pre_request`` reads of gunicorn's request, and whether it asked to close."""

    def __init__(self, headers: list[tuple[str, str]]):
        self.method, self.path, self.headers = "POST", "/predict", headers
        self.closing = False

    def force_close(self) -> None:
        self.closing = True


def test_pre_request_closes_after_bodies_the_app_does_not_read_to_the_end():
    worker = SimpleNamespace(log=logging.getLogger("test"))
    limit = gunicorn_config.SETTINGS.max_content_length
    cases = {
        (("CONTENT-LENGTH", str(limit + 1)),): True,  # refused unread
        (("TRANSFER-ENCODING", "chunked"),): True,  # read at most to the limit
        (("CONTENT-LENGTH", str(limit)),): False,
        (): False,
    }
    for headers, closes in cases.items():
        request = FakeRequest(list(headers))
        gunicorn_config.pre_request(worker, request)
        assert request.closing is closes, headers


def test_accepted_connections_inherit_the_socket_timeout():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        gunicorn_config.post_worker_init(SimpleNamespace(sockets=[listener]))
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                    seconds, microseconds = struct.unpack(
                        "ll", accepted.getsockopt(socket.SOL_SOCKET, option, 16)
                    )
                    assert seconds + microseconds / 1e6 == gunicorn_config.SETTINGS.socket_timeout_s


def test_on_starting_refuses_app_limits_gunicorn_would_cut_first():
    fine = SimpleNamespace(cfg=SimpleNamespace(limit_request_line=8190, limit_request_field_size=8190))
    gunicorn_config.on_starting(fine)
    for line, field in ((4094, 8190), (8190, 4096)):
        with pytest.raises(SettingsError):
            gunicorn_config.on_starting(
                SimpleNamespace(cfg=SimpleNamespace(limit_request_line=line, limit_request_field_size=field))
            )


def test_timed_out_connection_is_one_warning_line():
    error = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    timed_out = logging.LogRecord(
        "gunicorn.error",
        logging.ERROR,
        __file__,
        1,
        "Socket error processing request.",
        (),
        (OSError, error, None),
    )
    other = logging.LogRecord(
        "gunicorn.error", logging.ERROR, __file__, 1, "Socket error processing request.", (), None
    )
    socket_filter = gunicorn_config.SocketTimeoutFilter()
    assert socket_filter.filter(timed_out) and socket_filter.filter(other)
    assert (timed_out.levelname, timed_out.exc_info) == ("WARNING", None)
    assert "AICLASSIFY_SOCKET_TIMEOUT_S" in timed_out.getMessage()
    assert (other.levelname, other.getMessage()) == ("ERROR", "Socket error processing request.")


def test_every_documented_gunicorn_command_uses_the_config_module():
    from conftest import REPO

    option = "-c python:aiclassify.serving.gunicorn_config"
    makefile = (REPO / "Makefile").read_text()
    assert option in makefile.split("GUNICORN_API =", 1)[1].split("\n\n", 1)[0]
    for document in ("README.md", "docs/api.md"):
        text = (REPO / document).read_text()
        commands = [line for line in text.splitlines() if "gunicorn --bind" in line or "bin/gunicorn" in line]
        assert commands and all(option in line for line in commands), document
