"""The HTTP load of the serving benchmark, its statistics, and the images it sends.

The load client never imports TensorFlow: it sends multipart ``POST /predict`` requests over
keep-alive ``http.client`` connections, one per client thread, and times them.
"""

from __future__ import annotations

import http.client
import json
import math
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
BOUNDARY = "aiclassify-bench-3f1c"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(latencies_s: list[float], errors: list[str], wall_s: float) -> dict:
    """Latency percentiles (ms), throughput (successful requests/s) and error count of one load."""
    return {
        "requests": len(latencies_s) + len(errors),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p95_ms": percentile(latencies_s, 95) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "mean_ms": statistics.fmean(latencies_s) * 1000 if latencies_s else math.nan,
        "throughput_rps": len(latencies_s) / wall_s if wall_s > 0 else math.nan,
        "wall_s": wall_s,
    }


def multipart_body(image: bytes, filename: str, boundary: str = BOUNDARY) -> bytes:
    """A ``multipart/form-data`` body with ``image`` in field ``file``, parts split by ``boundary``."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    return head.encode() + image + f"\r\n--{boundary}--\r\n".encode()


@dataclass(frozen=True)
class Answer:
    """What one upload got: the status and body, the server's ``X-Latency-Ms``, or a connection error."""

    status: int | None
    payload: bytes = b""
    server_ms: str | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """A 200 with predictions."""
        return self.status == 200 and b'"predictions"' in self.payload

    @property
    def problem(self) -> str:
        """The connection error, else the status and the start of the body."""
        return self.error or f"HTTP {self.status}: {self.payload[:120]!r}"


class UploadConnection:
    """One client thread's keep-alive connection, posting one multipart upload to ``/predict`` at a time
    (each with its own boundary) and reconnecting after the server closes it or a request fails.

    ``path``: the request target, with its query string (e.g. ``/predict?model=auto``).
    """

    def __init__(self, port: int, timeout_s: float, path: str = "/predict"):
        self.port, self.timeout_s, self.path = port, timeout_s, path
        self._connection: http.client.HTTPConnection | None = None

    def post(self, image: bytes, filename: str, index: int) -> Answer:
        """Upload ``image`` as ``filename`` to ``path``; ``index`` makes the boundary unique."""
        try:
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
            boundary = f"{BOUNDARY}-{time.monotonic_ns():x}-{index}"
            self._connection.request(
                "POST",
                self.path,
                body=multipart_body(image, filename, boundary),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            response = self._connection.getresponse()
            answer = Answer(response.status, response.read(), response.getheader("X-Latency-Ms"))
            if response.will_close:
                self.close()
            return answer
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return Answer(None, error=f"{type(error).__name__}: {error}")

    def close(self) -> None:
        """Close the connection, if open."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def face_figures(payload: bytes) -> tuple[int, list[float], int]:
    """Of one ``/predict`` answer: the faces scored, the server's ``timing_ms.face_detection`` of
    each searched image, and the images whose search failed (warning ``face_detection_failed``)."""
    faces, detection_ms, failed = 0, [], 0
    for prediction in json.loads(payload)["predictions"]:
        faces += len(prediction.get("faces") or ())
        searched = (prediction.get("timing_ms") or {}).get("face_detection")
        if searched is not None:
            detection_ms.append(searched)
        failed += any(w.get("code") == "face_detection_failed" for w in prediction.get("warnings") or ())
    return faces, detection_ms, failed


def run_load(
    port: int,
    images: list[bytes],
    total: int,
    concurrency: int,
    timeout_s: float = 60,
    path: str = "/predict",
    faces: bool = False,
) -> dict:
    """Send ``total`` requests to ``path`` from ``concurrency`` threads (one keep-alive connection each).

    Each request gets its own multipart boundary, as curl and requests do: Werkzeug compiles its
    parser's regular expressions per boundary, so a fixed one would flatter the server. With
    ``faces``, each successful answer is read (:func:`face_figures`) and the summary adds
    ``faces_per_request``, ``server_detection_p50_ms`` and ``face_searches_failed``.
    """
    lock, issued = threading.Lock(), [0]

    def client() -> tuple[list[float], list[str], list[float], list[tuple[int, list[float], int]]]:
        """One client thread: requests until ``total`` are issued; latencies, errors, server times,
        and (``faces``) the face figures of each answer."""
        latencies, errors, server_ms, found = [], [], [], []
        connection = UploadConnection(port, timeout_s, path)
        while True:
            with lock:
                index, issued[0] = issued[0], issued[0] + 1
            if index >= total:
                break
            started = time.perf_counter()
            which = index % len(images)
            answer = connection.post(images[which], f"bench-{which}.jpg", index)
            if answer.ok:
                latencies.append(time.perf_counter() - started)
                if answer.server_ms:
                    server_ms.append(float(answer.server_ms))
                if faces:
                    found.append(face_figures(answer.payload))
            else:
                errors.append(answer.problem)
        connection.close()
        return latencies, errors, server_ms, found

    cpu_started, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = [f.result() for f in [pool.submit(client) for _ in range(concurrency)]]
    wall = time.perf_counter() - started
    summary = summarize([x for o in outcomes for x in o[0]], [e for o in outcomes for e in o[1]], wall)
    summary["client_cpu_fraction"] = (time.process_time() - cpu_started) / wall
    summary["server_p50_ms"] = percentile([x for o in outcomes for x in o[2]], 50)  # X-Latency-Ms
    if faces:
        found = [figures for o in outcomes for figures in o[3]]
        answered = len(found)
        summary["faces_per_request"] = sum(f[0] for f in found) / answered if answered else math.nan
        summary["server_detection_p50_ms"] = percentile([ms for f in found for ms in f[1]], 50)
        summary["face_searches_failed"] = sum(f[2] for f in found)
    return summary


def demo_images(count: int, size: int) -> list[bytes]:
    """``count`` distinct demo JPEGs of ``size`` pixels, alternating real and AI-generated."""
    import numpy as np

    from aiclassify.data.demo import render

    return [render(i % 2, size, np.random.default_rng([7, i])) for i in range(count)]


def image_files(folder: Path, count: int) -> list[bytes]:
    """The first ``count`` images (JPEG, PNG, WebP, BMP) of ``folder`` and its subfolders, by path,
    repeated in turn when there are fewer."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise SystemExit(f"error: no images under {folder}")
    return [paths[i % len(paths)].read_bytes() for i in range(count)]


def upload_images(image_dir: Path | None, image_size: int, count: int) -> list[bytes]:
    """The images sent: ``count`` from ``image_dir`` when given, else demo JPEGs of ``image_size`` pixels."""
    if image_dir:
        return image_files(image_dir, count)
    return demo_images(count, image_size)
