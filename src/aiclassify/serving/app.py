"""The Flask inference API: ``create_app()`` builds it; gunicorn serves it.

    gunicorn -c python:aiclassify.serving.gunicorn_config --bind 127.0.0.1:8000 \\
        'aiclassify.serving.app:create_app()'

Models are loaded when the app is created (in a background thread by default), never at import.
See ``docs/api.md`` for the endpoints, status codes and environment variables.
"""

from __future__ import annotations

import hmac
import io
import logging
import time
from typing import IO, Any

from flask import Flask, Request, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge
from werkzeug.utils import cached_property

from aiclassify.faces import FaceDetector
from aiclassify.logs import printable, setup_logging
from aiclassify.predict import Predictor
from aiclassify.serving import routes
from aiclassify.serving.apispec import openapi_document
from aiclassify.serving.errors import ApiError, reason_for_status, shorten
from aiclassify.serving.faces import AUTO, FaceService
from aiclassify.serving.images import ImageLimits, configure_pillow
from aiclassify.serving.registry import ModelRegistry, ServedModel
from aiclassify.serving.request_limits import (
    body_stream,
    check_content_encoding,
    check_request_head,
    discard_unread_body,
    too_large,
)
from aiclassify.serving.settings import ServerSettings, default_models, load_settings
from aiclassify.serving.state import ServingState, serving_state

logger = logging.getLogger("aiclassify.serving")
access_logger = logging.getLogger("aiclassify.serving.access")

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})


class BoundedJsonProvider(DefaultJSONProvider):
    """Flask's JSON, except that a document nested too deeply for the parser (``RecursionError``, e.g. a
    thousand ``[``) is invalid JSON like any other: every JSON request body is parsed with it."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Flask's ``loads``, raising ``ValueError`` for a document nested too deeply."""
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("nested too deeply") from None


class InMemoryRequest(Request):
    """A request whose uploaded files stay in memory (Werkzeug spools large ones to disk) and whose JSON
    body, when it is not valid JSON (however deeply nested: :class:`BoundedJsonProvider`), is a 400
    saying why."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """400 ``the request body is not valid JSON: <why>`` (Flask's own 400 does not say)."""
        if e is None:
            raise ApiError(400, "the request body is not JSON (send application/json)", "invalid_json")
        raise ApiError(400, f"the request body is not valid JSON: {shorten(str(e))}", "invalid_json")

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body, refused with 413 over ``AICLASSIFY_MAX_UPLOAD_MB`` whether or not it declares its
        length (:func:`~aiclassify.serving.request_limits.body_stream`)."""
        return body_stream(self)


def create_app(
    config: ServerSettings | dict[str, Any] | None = None,
    predictors: dict[str, Predictor] | Predictor | None = None,
    face_detector: FaceDetector | None = None,
) -> Flask:
    """Build the app and start loading its models (and its face detector).

    ``config``: :class:`ServerSettings` or a dict of its fields, overriding ``AICLASSIFY_*``
    environment variables. ``predictors``: a dict of name to :class:`~aiclassify.predict.Predictor`,
    or one predictor; these replace loading the same-named configured models from disk.
    ``face_detector``: a detector to use instead of building MTCNN from the settings (anything with
    :class:`~aiclassify.faces.FaceDetector`'s ``detect`` and limits).
    """
    setup_logging()
    settings = load_settings(config)
    models = build_models(settings, predictors)
    if AUTO in {m.name for m in models}:
        raise ValueError(
            f"no model may be called {AUTO!r}: model={AUTO} asks for the face and general models"
        )
    default_name = settings.default_model or models[0].name
    if default_name not in {m.name for m in models}:
        raise ValueError(f"default model {default_name!r} is not one of the served models")
    registry = ModelRegistry(models, default_name)
    limits = ImageLimits(
        settings.max_image_pixels,
        settings.max_image_side,
        max_jpeg_scans=settings.max_jpeg_scans,
        max_request_pixels=settings.max_request_pixels,
        decode_budget_s=settings.decode_budget_s,
    )
    configure_pillow(limits)

    app = Flask(__name__)
    # A path with an empty segment (/v1/models/faces//metadata) is no route: a 404, never Werkzeug's 308
    # redirect to the merged path, an HTML page whose Location is built from the client's Host header
    # and may name another route (/v1/models/faces/versions//metadata: version "metadata").
    app.url_map.merge_slashes = False
    app.request_class = InMemoryRequest
    app.json = BoundedJsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_form_memory_size
    app.config["MAX_FORM_PARTS"] = settings.max_form_parts
    app.json.sort_keys = False
    faces = FaceService(settings, set(registry.models), face_detector)
    ServingState(settings, registry, limits, faces).attach(app)
    app.register_blueprint(routes.blueprint)
    _register_hooks(app)
    with app.app_context():
        openapi_document()  # generated now, before requests arrive on several threads
    registry.start(
        settings.background_loading,
        settings.max_batch_size,
        settings.max_batch_wait_ms / 1000,
        on_batch=serving_state(app).metrics.observe_batch,
        then=faces.load,
    )
    logger.info("Serving models %s (default %s)", ", ".join(registry.models), default_name)
    return app


def build_models(
    settings: ServerSettings, predictors: dict[str, Predictor] | Predictor | None
) -> list[ServedModel]:
    """The served models: injected predictors first, then configured paths not injected."""
    if predictors is not None and not isinstance(predictors, dict):
        predictors = {settings.default_model or "default": predictors}
    predictors = predictors or {}
    sources = settings.models
    if not sources and not predictors:
        sources = default_models()
    models = [ServedModel(name, None, predictor) for name, predictor in predictors.items()]
    models += [ServedModel(name, path) for name, path in sources if name not in predictors]
    return models


def _register_hooks(app: Flask) -> None:
    """Request head limits and API key check, access log, response headers and JSON error handlers."""
    app.before_request(_start_request)
    app.after_request(_log_request)
    app.after_request(_finish_response)  # Flask runs after_request hooks last registered first
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)


def _start_request() -> None:
    """Start the latency clock, refuse an over-long URL or header (414, 431), check ``X-API-Key``
    when a key is configured (``g.api_key_valid``: the caller sent it, for what only it may see), and
    refuse a compressed body (415)."""
    g.started = time.perf_counter()
    settings = serving_state().settings
    check_request_head(request, settings)
    key = settings.api_key
    given = request.headers.get("X-API-Key", "")
    g.api_key_valid = bool(key) and hmac.compare_digest(given.encode(), key.encode())
    if key and request.path not in PUBLIC_PATHS and not g.api_key_valid:
        raise ApiError(401, "missing or wrong API key: send it in the X-API-Key header")
    check_content_encoding(request)


def _log_request(response):
    """One access-log line per request, with latency, and the request counted on ``/metrics``."""
    started = g.get("started")
    latency_ms = (time.perf_counter() - started) * 1000 if started else float("nan")
    if started:
        rule = request.url_rule.rule if request.url_rule is not None else None  # never the raw path
        serving_state().metrics.observe_request(rule, request.method, response.status_code, latency_ms / 1000)
    access_logger.info(
        "%s %s %s %d %.1f ms",
        request.remote_addr,
        request.method,
        printable(request.full_path.rstrip("?"), also=" \\"),
        response.status_code,
        latency_ms,
    )
    response.headers["X-Latency-Ms"] = f"{latency_ms:.1f}"
    return response


def _finish_response(response):
    """The headers every answer carries, and the unread rest of the body discarded so the connection
    can carry the next request (:func:`~aiclassify.serving.request_limits.discard_unread_body`)."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    discard_unread_body(request)
    return response


def error_response(status: int, message: str):
    """``{"error": message}`` with ``status``."""
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _api_error(error: ApiError):
    serving_state().metrics.observe_rejection(error.reason)
    return error_response(error.status, error.message)


def _http_error(error: HTTPException):
    metrics = serving_state().metrics
    if isinstance(error, RequestEntityTooLarge):
        reason, message = too_large(error, request, serving_state().settings)
        metrics.observe_rejection(reason)
        return error_response(413, message)
    if error.code is not None and error.code < 500:
        disconnected = isinstance(error, ClientDisconnected)
        metrics.observe_rejection("client_disconnected" if disconnected else reason_for_status(error.code))
    response = error_response(error.code or 500, error.description or error.name)
    valid_methods = getattr(error, "valid_methods", None)
    if valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


def _server_error(error: Exception):
    logger.exception("Unhandled error on %s %s", request.method, printable(request.path, also=" \\"))
    return error_response(500, "internal server error; the server log has the details")
