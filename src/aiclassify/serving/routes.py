"""The service's own endpoints: ``/predict``, ``/healthz``, ``/readyz`` and ``/openapi.json``."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from aiclassify.serving import openapi, tfserving
from aiclassify.serving.errors import ApiError
from aiclassify.serving.explanations import parse_flag
from aiclassify.serving.inference import Scored, Upload, decode_b64, score_uploads
from aiclassify.serving.models import ServedModel

blueprint = Blueprint("aiclassify", __name__)
blueprint.register_blueprint(tfserving.blueprint)

FILE_FIELDS = ("file", "files")


def _state():
    return current_app.extensions["aiclassify"]


@blueprint.get("/healthz")
def healthz():
    """The process is alive."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    """200 when every configured model is loaded and answered its warm-up call, else 503."""
    registry = _state().registry
    models = {
        name: {"state": m.state, "version": m.version, "error": m.error or None}
        for name, m in registry.models.items()
    }
    ready = registry.ready()
    return jsonify({"ready": ready, "models": models}), 200 if ready else 503


@blueprint.get("/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi.spec())


@blueprint.post("/predict")
def predict():
    """Classify images sent as multipart ``file``/``files``, JSON ``{"images": [{"b64"}]}`` or a raw body."""
    started = time.perf_counter()
    state = _state()
    body = _json_body()
    model = state.registry.get(_param("model", body))
    threshold, point = model.threshold_for(_target_fpr(body), _param("operating_point", body))
    explain = parse_flag("explain", _param("explain", body))
    uploads = _collect_uploads(body, state.settings.max_images)
    scored = score_uploads(model, uploads, state.limits, state.settings.request_timeout_s)
    predictions = [
        _prediction(index, upload, item, model, threshold, point)
        for index, (upload, item) in enumerate(zip(uploads, scored, strict=True))
    ]
    if explain:
        for prediction, item in zip(predictions, scored, strict=True):
            prediction["explanation"] = model.explain(item.image.data)
    return jsonify(
        {
            "model": _model_summary(model),
            "predictions": predictions,
            "timing_ms": {"total": round((time.perf_counter() - started) * 1000, 3)},
        }
    )


def _json_body() -> dict[str, Any] | None:
    """The JSON object body, None when the request is not JSON; 400 when it is malformed."""
    if not request.is_json:
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the request body is not a JSON object")
    return body


def _param(name: str, body: dict[str, Any] | None) -> str | None:
    """A parameter from the query string, the form or the JSON body."""
    value = request.args.get(name)
    if value is None and request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        value = request.form.get(name)
    if value is None and body is not None:
        value = body.get(name)
    if value is not None and not isinstance(value, (str, int, float)):
        raise ApiError(400, f"parameter {name} must be a string or a number")
    return None if value is None or value == "" else str(value)


def _target_fpr(body: dict[str, Any] | None) -> float | None:
    """``target_fpr`` as a number in (0, 1), or None."""
    text = _param("target_fpr", body)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"target_fpr must be a number, not {text!r}") from None
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ApiError(400, f"target_fpr must be between 0 and 1, not {text}")
    return value


def _collect_uploads(body: dict[str, Any] | None, max_images: int) -> list[Upload]:
    """The images of the request, in order; 400 when there are none or too many."""
    if body is not None:
        images = body.get("images")
        if not isinstance(images, list):
            raise ApiError(400, 'no image: the JSON body needs "images": [{"b64": "..."}]')
        uploads = [Upload(decode_b64(item, f"images[{i}]")) for i, item in enumerate(images)]
    elif request.mimetype == "multipart/form-data":
        files = [f for field in FILE_FIELDS for f in request.files.getlist(field)]
        uploads = [Upload(f.read(), f.filename or None) for f in files]
    elif request.mimetype.startswith("image/") or request.mimetype == "application/octet-stream":
        uploads = [Upload(request.get_data())]
    else:
        uploads = []
    if not uploads:
        raise ApiError(
            400,
            "no image: send multipart field 'file' (repeatable) or 'files', "
            'or JSON {"images": [{"b64": "..."}]}',
        )
    if len(uploads) > max_images:
        raise ApiError(400, f"too many images: {len(uploads)}, at most {max_images} per request")
    return uploads


def _model_summary(model: ServedModel) -> dict[str, Any]:
    """Which model answered."""
    return {
        "name": model.name,
        "version": model.version,
        "run": model.metadata.get("name"),
        "architecture": model.metadata.get("model"),
        "temperature": model.temperature,
    }


def _prediction(
    index: int, upload: Upload, item: Scored, model: ServedModel, threshold: float, point: str | None
) -> dict[str, Any]:
    """The verdict on one image."""
    probability = model.calibrate(item.probability)
    return {
        "index": index,
        "filename": upload.filename,
        "label": model.label(probability, threshold),
        "probability_ai": probability,
        "probability_ai_uncalibrated": item.probability,
        "threshold": threshold,
        "operating_point": point,
        "model": {"name": model.name, "version": model.version},
        "width": item.image.width,
        "height": item.image.height,
        "format": item.image.format,
        "converted": item.image.converted,
        "timing_ms": {"preprocess": round(item.preprocess_ms, 3), "inference": round(item.inference_ms, 3)},
    }
