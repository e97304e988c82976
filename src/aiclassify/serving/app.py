"""The Flask inference API: ``create_app()`` builds it; gunicorn serves it.

    gunicorn --bind 127.0.0.1:8000 --workers 1 --threads 32 'aiclassify.serving.app:create_app()'

Models are loaded when the app is created (in a background thread by default), never at import.
See ``docs/api.md`` for the endpoints, status codes and environment variables.
"""

from __future__ import annotations

import hmac
import io
import logging
import time
from typing import Any

from flask import Flask, Request, g, jsonify, request
from werkzeug.exceptions import HTTPException

from aiclassify.logs import setup_logging
from aiclassify.predict import Predictor
from aiclassify.serving import routes
from aiclassify.serving.apispec import openapi_document
from aiclassify.serving.errors import ApiError
from aiclassify.serving.images import ImageLimits, configure_pillow
from aiclassify.serving.registry import ModelRegistry, ServedModel
from aiclassify.serving.settings import DEFAULT_MODELS, ServerSettings, load_settings, parse_models
from aiclassify.serving.state import ServingState, serving_state

logger = logging.getLogger("aiclassify.serving")
access_logger = logging.getLogger("aiclassify.serving.access")

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})


class InMemoryRequest(Request):
    """A request whose uploaded files stay in memory (Werkzeug spools large ones to disk)."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def create_app(
    config: ServerSettings | dict[str, Any] | None = None,
    predictors: dict[str, Predictor] | Predictor | None = None,
) -> Flask:
    """Build the app and start loading its models.

    ``config``: :class:`ServerSettings` or a dict of its fields, overriding ``AICLASSIFY_*``
    environment variables. ``predictors``: a dict of name to :class:`~aiclassify.predict.Predictor`,
    or one predictor; these replace loading the same-named configured models from disk.
    """
    setup_logging()
    settings = load_settings(config)
    models = build_models(settings, predictors)
    default_name = settings.default_model or models[0].name
    if default_name not in {m.name for m in models}:
        raise ValueError(f"default model {default_name!r} is not one of the served models")
    registry = ModelRegistry(models, default_name)
    limits = ImageLimits(settings.max_image_pixels, settings.max_image_side)
    configure_pillow(limits)

    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.json.sort_keys = False
    ServingState(settings, registry, limits).attach(app)
    app.register_blueprint(routes.blueprint)
    _register_hooks(app)
    with app.app_context():
        openapi_document()  # generated now, before requests arrive on several threads
    registry.start(settings.background_loading, settings.max_batch_size, settings.max_batch_wait_ms / 1000)
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
        sources = parse_models(DEFAULT_MODELS)
    models = [ServedModel(name, None, predictor) for name, predictor in predictors.items()]
    models += [ServedModel(name, path) for name, path in sources if name not in predictors]
    return models


def _register_hooks(app: Flask) -> None:
    """API key check, access log and JSON error handlers."""
    app.before_request(_start_request)
    app.after_request(_log_request)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)


def _start_request() -> None:
    """Start the latency clock and check ``X-API-Key`` when a key is configured."""
    g.started = time.perf_counter()
    key = serving_state().settings.api_key
    if key and request.path not in PUBLIC_PATHS:
        given = request.headers.get("X-API-Key", "")
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise ApiError(401, "missing or wrong API key: send it in the X-API-Key header")


def _log_request(response):
    """One access-log line per request, with latency."""
    started = g.get("started")
    latency_ms = (time.perf_counter() - started) * 1000 if started else float("nan")
    access_logger.info(
        "%s %s %s %d %.1f ms",
        request.remote_addr,
        request.method,
        request.full_path.rstrip("?"),
        response.status_code,
        latency_ms,
    )
    response.headers["X-Latency-Ms"] = f"{latency_ms:.1f}"
    return response


def error_response(status: int, message: str):
    """``{"error": message}`` with ``status``."""
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _api_error(error: ApiError):
    return error_response(error.status, error.message)


def _http_error(error: HTTPException):
    if error.code == 413:
        limit = serving_state().settings.max_upload_mb
        return error_response(413, f"request body larger than the {limit:g} MB limit")
    response = error_response(error.code or 500, error.description or error.name)
    valid_methods = getattr(error, "valid_methods", None)
    if valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


def _server_error(error: Exception):
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal server error; the server log has the details")
