"""The gunicorn settings the API is served with (docs/api.md, "Running it"):

    gunicorn -c python:aiclassify.serving.gunicorn_config --bind 127.0.0.1:8000 \\
        'aiclassify.serving.app:create_app()'

Command-line options given after ``-c`` override these. The settings that bound what a client can make
the server do are set here on purpose, not left to gunicorn's defaults; the ones that come from
``AICLASSIFY_*`` variables are read from the same environment the app reads
(:func:`~aiclassify.serving.settings.load_settings`).

What gunicorn 27's threaded worker can and cannot do against slow clients (measured in docs/api.md):

- A connection that sends nothing holds a thread for 5 s (gunicorn's fixed wait for a first byte),
  then waits in the worker's event loop, costing no thread, until ``keepalive`` expires.
- A connection that sends part of its request and stops holds a thread while gunicorn waits for the
  rest: gunicorn has no header or body timeout of its own. :func:`post_worker_init` sets the operating
  system's per-read and per-write timeouts (``SO_RCVTIMEO``, ``SO_SNDTIMEO``) on the listening
  sockets, which the accepted connections inherit (Linux): a client silent for
  ``AICLASSIFY_SOCKET_TIMEOUT_S`` in the middle of its request, or not reading its answer, has its
  connection closed and the thread is free again.
- gunicorn closes each such connection on the worker's event-loop thread, waiting up to 2 s for the
  client to close its side: while it waits the worker accepts no connection. N clients that stall
  and never close therefore freeze new connections for up to 2 x N s after the timeout.
- The timeout is per read, not per request: a client that sends a byte every few seconds keeps its
  thread for as long as it goes on. As many such clients as threads, and ``/healthz`` waits.

A buffering reverse proxy in front (nginx: ``client_header_timeout``, ``client_body_timeout``,
``proxy_request_buffering on``, ``limit_conn``) is what stops all of these; production must have one.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct

from aiclassify.logs import LOG_FORMAT
from aiclassify.serving.settings import SettingsError, load_settings

SETTINGS = load_settings()  # the AICLASSIFY_* variables, as the app will read them

workers = 1  # one process holds one copy of each model; add workers only when it cannot use the CPU
threads = 32  # requests inside the app at once, so the largest batch; docs/performance.md measured it
worker_class = "gthread"
worker_connections = 1000  # open connections per worker; past it the worker stops accepting new ones
backlog = 2048  # connections the kernel queues while the worker is not accepting
timeout = 120  # a worker silent this long is restarted; importing TensorFlow counts against it
graceful_timeout = 30  # seconds a stopping worker has to finish its requests
keepalive = 5  # seconds an idle kept-alive connection stays open (a proxy's idle timeout: lower)
preload_app = False  # TensorFlow must not be initialised before gunicorn forks

# Front-server limits, above the app's own (AICLASSIFY_MAX_URL_BYTES, AICLASSIFY_MAX_HEADER_BYTES), so
# that the app answers an over-long URL or header with JSON and gunicorn's HTML page is only for
# requests beyond these (docs/api.md lists what stays HTML).
limit_request_line = 8190  # bytes of "METHOD target HTTP/1.1": gunicorn's largest; beyond it 414 HTML
limit_request_fields = 100  # header fields; beyond it 431 HTML
limit_request_field_size = 8190  # bytes of one header field; beyond it 431 HTML
http_parser = "python"  # the parser whose limits and errors docs/api.md describes, whatever is installed
http_protocols = "h1"  # HTTP/1.1 only: what these limits and the proxy in front are about
http2_cleartext = "off"  # no HTTP/2 without TLS either

control_socket_disable = True  # gunicorn 27's control socket (~/.gunicorn/gunicorn.ctl): not used

accesslog = None  # the app writes the access log (logger aiclassify.serving.access), escaped
errorlog = "-"
loglevel = "info"
# One format on stderr for gunicorn's records and the app's: aiclassify.logs.EscapingFormatter (one
# line per record whatever a client sent), gunicorn's own access log off, and the traceback gunicorn
# writes for each connection the socket timeout closed made one warning line (SocketTimeoutFilter).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"escaped": {"()": "aiclassify.logs.EscapingFormatter", "fmt": LOG_FORMAT}},
    "filters": {"socket_timeouts": {"()": "aiclassify.serving.gunicorn_config.SocketTimeoutFilter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "escaped", "stream": "ext://sys.stderr"}
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": [],
            "propagate": True,
            "filters": ["socket_timeouts"],
        },
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
}


class SocketTimeoutFilter(logging.Filter):
    """Make gunicorn's record of a connection closed by the socket timeout (logged as an error, with a
    traceback, "Socket error processing request.") one warning line that says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record when its exception is a timed-out read or write; keep every record."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, OSError) and error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            record.msg = (
                "closed a connection: the client sent or read nothing for %g s (AICLASSIFY_SOCKET_TIMEOUT_S)"
            )
            record.args = (SETTINGS.socket_timeout_s,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def on_starting(server) -> None:
    """Refuse to start when the app's limits are not below gunicorn's (the app would never see the
    requests it is meant to answer with JSON)."""
    config = server.cfg
    if SETTINGS.max_url_bytes + len("OPTIONS  HTTP/1.1") > config.limit_request_line:
        raise SettingsError(
            f"AICLASSIFY_MAX_URL_BYTES ({SETTINGS.max_url_bytes}) must leave room below gunicorn's "
            f"limit_request_line ({config.limit_request_line})"
        )
    if SETTINGS.max_header_bytes + len(": \r\n") > config.limit_request_field_size:
        raise SettingsError(
            f"AICLASSIFY_MAX_HEADER_BYTES ({SETTINGS.max_header_bytes}) must be below gunicorn's "
            f"limit_request_field_size ({config.limit_request_field_size})"
        )


def post_worker_init(worker) -> None:
    """Give every connection this worker accepts a read and a write timeout of
    ``AICLASSIFY_SOCKET_TIMEOUT_S`` (set on the listening sockets; accepted sockets inherit them)."""
    seconds = int(SETTINGS.socket_timeout_s)
    microseconds = int((SETTINGS.socket_timeout_s - seconds) * 1_000_000)
    timeval = struct.pack("ll", seconds, microseconds)
    for listener in worker.sockets:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def pre_request(worker, req) -> None:
    """Answer with ``Connection: close`` (and close) a request whose body the app will not read to the
    end: one declaring a ``Content-Length`` over ``AICLASSIFY_MAX_UPLOAD_MB`` (refused with 413 unread)
    or sent chunked (read at most to the limit). Leaving the rest unread, gunicorn could not find the
    next request on the connection; without this it would close anyway after announcing keep-alive."""
    worker.log.debug("%s %s", req.method, req.path)
    headers = dict(req.headers)  # upper-case names; gunicorn refuses repeated Content-Length
    declared = headers.get("CONTENT-LENGTH", "")
    too_large = declared.isdigit() and int(declared) > SETTINGS.max_content_length
    if too_large or "TRANSFER-ENCODING" in headers:
        req.force_close()
