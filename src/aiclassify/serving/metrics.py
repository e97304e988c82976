"""Prometheus metrics of one app, served at ``GET /metrics`` in the Prometheus text format.

Each app has its own :class:`ApiMetrics` and its own ``CollectorRegistry`` (never the library's
global one), kept in its :class:`~.state.ServingState`. Every label takes a bounded set of values,
whatever clients send: the route is the URL rule that matched (``/v1/models/<name>:predict``, never
the raw path; ``unmatched`` when none did), the method one of :data:`METHODS` or ``other``, the
reason of a refusal a fixed label chosen by the code (:class:`~.errors.ApiError`'s ``reason``), the
model a configured name. Counts are per process: with several gunicorn workers, each scrape reads
the worker that answers it.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the Prometheus text exposition format
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # a request no URL rule matched (404, or 405 before routing)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DECODE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def batch_size_buckets(max_batch_size: int) -> tuple[float, ...]:
    """Powers of two up to ``max_batch_size``, and ``max_batch_size`` itself."""
    buckets, size = [], 1
    while size < max_batch_size:
        buckets.append(float(size))
        size *= 2
    return (*buckets, float(max_batch_size))


def method_label(method: str) -> str:
    """``method`` when it is a standard one, else ``other`` (a client may send any token)."""
    return method if method in METHODS else "other"


class ApiMetrics:
    """The counters and histograms of one app, in a registry of its own."""

    def __init__(self, max_batch_size: int = 32):
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "aiclassify_requests",
            "Requests answered, by route (URL rule), method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "aiclassify_request_duration_seconds",
            "Time from the request's arrival in the app to its answer, by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._rejected = Counter(
            "aiclassify_rejected_requests",
            "Requests refused on purpose (4xx, or 503), by reason: not_an_image, image_too_large, "
            "body_too_large, unknown_model, explanations_busy...",
            ["reason"],
            registry=self.registry,
        )
        self._batch_size = Histogram(
            "aiclassify_batch_size",
            "Images per forward pass of the batching queue, by model.",
            ["model"],
            buckets=batch_size_buckets(max_batch_size),
            registry=self.registry,
        )
        self._decode = Histogram(
            "aiclassify_image_decode_seconds",
            "Time to check, decode and normalise one uploaded image before scoring.",
            buckets=DECODE_BUCKETS_S,
            registry=self.registry,
        )
        self._face_detection = Histogram(
            "aiclassify_face_detection_seconds",
            "Time to find and crop the faces of one image (model=auto and model=faces).",
            buckets=DECODE_BUCKETS_S,
            registry=self.registry,
        )
        self._faces = Counter(
            "aiclassify_faces_scored", "Faces found and scored by the face model.", registry=self.registry
        )
        self._explanations = Gauge(
            "aiclassify_explanations_in_progress",
            "Requests computing Grad-CAM explanations now.",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU seconds...

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (``route`` None: no URL rule matched)."""
        route = route or UNMATCHED_ROUTE
        method = method_label(method)
        self._requests.labels(route, method, str(status)).inc()
        self._latency.labels(route, method).observe(seconds)

    def observe_rejection(self, reason: str) -> None:
        """Count one refused request under its short ``reason``."""
        self._rejected.labels(reason).inc()

    def observe_batch(self, model: str, size: int) -> None:
        """Record the size of one batch ``model`` scored."""
        self._batch_size.labels(model).observe(size)

    def observe_decode(self, seconds: float) -> None:
        """Record the time one uploaded image took to check, decode and normalise."""
        self._decode.observe(seconds)

    def observe_face_detection(self, seconds: float, faces: int) -> None:
        """Record one image's face search time and the number of faces it found."""
        self._face_detection.observe(seconds)
        self._faces.inc(faces)

    def watch_explanations(self, in_progress: Callable[[], float]) -> None:
        """Read the number of explanations in progress from ``in_progress`` at every scrape."""
        self._explanations.set_function(in_progress)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
