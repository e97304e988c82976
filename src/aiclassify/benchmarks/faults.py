"""The fault-tolerance load: valid uploads mixed with faulty requests, and how many valid ones were lost.

A share ``fault_rate`` of the requests (chosen by a seeded draw, so a run can be repeated) is one of
:data:`FAULT_KINDS`, in turn: a truncated JPEG, bytes that are no image, malformed JSON, a body over the
server's upload limit, an unknown model, or a client that sends half its upload and disconnects.
The rest are the benchmark's valid multipart uploads. A valid request is *lost* when it gets
anything but a 200 with predictions, or a connection error. Valid requests use one keep-alive
connection per client thread, as in :func:`~aiclassify.benchmarks.load.run_load`; each faulty
request uses a connection of its own, closed afterwards, as a separate misbehaving client would.
Server errors are the 5xx answers clients saw plus, read from ``GET /metrics`` before and after,
those counted by the server (a disconnected client sees no answer at all).
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from aiclassify.benchmarks.load import BOUNDARY, UploadConnection, multipart_body, percentile

FAULT_KINDS = ("truncated", "not_an_image", "bad_json", "over_limit", "unknown_model", "disconnect")
EXPECTED_STATUS = {  # what the API answers each fault (a disconnected client reads no answer)
    "truncated": "422",
    "not_an_image": "422",
    "bad_json": "400",
    "over_limit": "413",
    "unknown_model": "404",
    "disconnect": "no answer",
}
DEFAULT_MAX_UPLOAD_MB = 16.0  # the API's AICLASSIFY_MAX_UPLOAD_MB default
NOT_AN_IMAGE = b"These are meeting notes, not a photo. "
SERVER_ERRORS = re.compile(r'^aiclassify_requests_total\{[^}]*status="5\d\d"[^}]*\} ([0-9.e+]+)$', re.M)


def fault_plan(total: int, fault_rate: float, seed: int = 0) -> list[str | None]:
    """For each request in order, the fault it carries, or None for a valid one: which requests are
    faulty is a seeded draw, their kinds take turns (so every kind is sent as often as the others)."""
    draw = random.Random(seed)
    faulty = [draw.random() < fault_rate for _ in range(total)]
    turns = iter(range(total))
    return [FAULT_KINDS[next(turns) % len(FAULT_KINDS)] if is_faulty else None for is_faulty in faulty]


def faulty_request(kind: str, image: bytes, max_upload_bytes: int) -> tuple[str, dict[str, str], bytes]:
    """``(path, headers, body)`` of one faulty request of ``kind`` (``disconnect``: the whole upload,
    of which only half is sent)."""
    boundary = f"{BOUNDARY}-fault-{time.monotonic_ns():x}"
    multipart = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if kind == "truncated":
        return "/predict", multipart, multipart_body(image[: len(image) // 2], "truncated.jpg", boundary)
    if kind == "not_an_image":
        text = (NOT_AN_IMAGE * (len(image) // len(NOT_AN_IMAGE) + 1))[: len(image)]
        return "/predict", multipart, multipart_body(text, "notes.jpg", boundary)
    if kind == "bad_json":
        return "/predict", {"Content-Type": "application/json"}, b'{"images": [{"b64": "/9j/4AAQ'
    if kind == "over_limit":
        return "/predict", {"Content-Type": "image/jpeg"}, image + bytes(max_upload_bytes + 1024 - len(image))
    if kind == "unknown_model":
        return "/predict?model=no-such-model", multipart, multipart_body(image, "photo.jpg", boundary)
    if kind == "disconnect":
        return "/predict", multipart, multipart_body(image, "photo.jpg", boundary)
    raise ValueError(f"unknown fault kind {kind!r}")


def send_fault(port: int, kind: str, image: bytes, max_upload_bytes: int, timeout_s: float) -> str:
    """Send one faulty request on a connection of its own; the status it got (``"422"``), ``no answer``
    for a client that disconnected, or the connection error's name."""
    path, headers, body = faulty_request(kind, image, max_upload_bytes)
    if kind == "disconnect":
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(head.encode() + body[: len(body) // 2])
        return "no answer"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        # The server may answer (413) and close before reading the whole body: then read its answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return str(response.status)
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


def server_error_count(port: int, timeout_s: float = 10) -> float | None:
    """The 5xx answers the server has counted (``GET /metrics``), or None when it cannot tell."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return sum(float(n) for n in SERVER_ERRORS.findall(text)) if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def run_fault_load(
    port: int,
    images: list[bytes],
    total: int,
    concurrency: int,
    fault_rate: float,
    seed: int = 0,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    timeout_s: float = 60,
) -> dict:
    """Send ``total`` requests, a share ``fault_rate`` of them faulty, from ``concurrency`` threads.

    Returns the counts of valid requests sent, answered 200 and lost (with examples), the statuses
    of each kind of faulty request, the 5xx answers seen by clients and counted by the server, and
    the latency percentiles (ms) and throughput of the valid requests.
    """
    plan, lock, issued = fault_plan(total, fault_rate, seed), threading.Lock(), [0]
    max_upload_bytes = int(max_upload_mb * 1024 * 1024)

    def client() -> tuple[list[float], list[str], Counter]:
        """One client thread: latencies of valid requests, what lost valid ones got, fault statuses."""
        latencies, lost, faults = [], [], Counter()
        connection = UploadConnection(port, timeout_s)
        while True:
            with lock:
                index, issued[0] = issued[0], issued[0] + 1
            if index >= total:
                break
            image = images[index % len(images)]
            if plan[index] is not None:
                faults[plan[index], send_fault(port, plan[index], image, max_upload_bytes, timeout_s)] += 1
                continue
            started = time.perf_counter()
            answer = connection.post(image, f"bench-{index % len(images)}.jpg", index)
            if answer.ok:
                latencies.append(time.perf_counter() - started)
            else:
                lost.append(answer.problem)
        connection.close()
        return latencies, lost, faults

    errors_before = server_error_count(port)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = [future.result() for future in [pool.submit(client) for _ in range(concurrency)]]
    wall = time.perf_counter() - started
    errors_after = server_error_count(port)
    latencies = [x for outcome in outcomes for x in outcome[0]]
    lost = [x for outcome in outcomes for x in outcome[1]]
    faults = sum((outcome[2] for outcome in outcomes), Counter())
    return summarize_faults(plan, latencies, lost, faults, wall, concurrency, errors_before, errors_after)


def summarize_faults(
    plan: list[str | None],
    latencies_s: list[float],
    lost: list[str],
    faults: Counter,
    wall_s: float,
    concurrency: int,
    server_errors_before: float | None = None,
    server_errors_after: float | None = None,
) -> dict:
    """The report of one fault load (see :func:`run_fault_load`)."""
    fault_statuses = {
        kind: {status: count for (k, status), count in sorted(faults.items()) if k == kind}
        for kind in FAULT_KINDS
        if any(k == kind for k, _ in faults)
    }
    seen_5xx = sum(1 for text in lost if re.match(r"HTTP 5\d\d", text))
    seen_5xx += sum(count for (_, status), count in faults.items() if re.fullmatch(r"5\d\d", status))
    counted = None
    if server_errors_before is not None and server_errors_after is not None:
        counted = server_errors_after - server_errors_before
    return {
        "concurrency": concurrency,
        "requests": len(plan),
        "valid_sent": sum(1 for kind in plan if kind is None),
        "valid_ok": len(latencies_s),
        "valid_lost": len(lost),
        "lost_examples": sorted(set(lost))[:5],
        "faulty_sent": sum(1 for kind in plan if kind is not None),
        "fault_statuses": fault_statuses,
        "unexpected_fault_answers": sum(
            count for (kind, status), count in faults.items() if status != EXPECTED_STATUS[kind]
        ),
        "server_errors_seen": seen_5xx,
        "server_errors_counted": counted,
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "valid_throughput_rps": len(latencies_s) / wall_s if wall_s > 0 else float("nan"),
        "wall_s": wall_s,
    }
