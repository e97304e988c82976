"""TensorFlow Serving's REST API shapes, so a client can move to TF Serving unchanged.

``POST /v1/models/<name>[/versions/<v>]:predict`` takes ``{"instances": [{"b64": ...}]}`` (or
``{"image_bytes": {"b64": ...}}`` per instance, or columnar ``{"inputs": ...}``) and answers
``{"predictions": [p, ...]}`` (``{"outputs": [...]}`` for columnar requests): the raw
``probability_ai`` of the exported ``serving_default`` signature, exactly what TF Serving would
return for the same SavedModel (no calibration: that is ``/predict``'s job). Errors are
``{"error": "..."}``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from aiclassify.serving.errors import ApiError
from aiclassify.serving.inference import Upload, decode_b64, score_uploads
from aiclassify.serving.models import ServedModel

blueprint = Blueprint("tfserving", __name__)

SIGNATURE = "serving_default"  # aiclassify.export.BYTES_SIGNATURE (not imported: it loads TensorFlow)
INPUT_KEY = "image_bytes"
OUTPUT_KEY = "probability_ai"


def _state():
    return current_app.extensions["aiclassify"]


def _model(name: str, version: str | None, need_loaded: bool) -> ServedModel:
    """The named model at ``version`` (any when None): 404 when there is none, 503 when not loaded."""
    registry = _state().registry
    model = registry.get(name) if need_loaded else registry.find(name)
    if version is not None and version != model.version:
        raise ApiError(404, f"Servable not found for request: Specific({name}, {version})")
    return model


@blueprint.get("/v1/models/<name>")
@blueprint.get("/v1/models/<name>/versions/<version>")
def model_status(name: str, version: str | None = None):
    """TF Serving's GetModelStatus: ``{"model_version_status": [...]}``."""
    model = _model(name, version, need_loaded=False)
    error_code = "OK" if model.state != "END" else "UNKNOWN"
    return jsonify(
        {
            "model_version_status": [
                {
                    "version": model.version,
                    "state": model.state,
                    "status": {"error_code": error_code, "error_message": model.error},
                }
            ]
        }
    )


@blueprint.get("/v1/models/<name>/metadata")
@blueprint.get("/v1/models/<name>/versions/<version>/metadata")
def model_metadata(name: str, version: str | None = None):
    """TF Serving's GetModelMetadata, plus this server's ``aiclassify`` section."""
    model = _model(name, version, need_loaded=True)
    return jsonify(
        {
            "model_spec": {"name": model.name, "signature_name": "", "version": model.version},
            "metadata": {"signature_def": signature_def(), "aiclassify": model.describe()},
        }
    )


def signature_def() -> dict[str, Any]:
    """The exported signatures as TF Serving describes them (``SignatureDefMap`` as JSON)."""

    def tensor(name: str, dtype: str, tensor_name: str) -> dict[str, Any]:
        shape = {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
        return {name: {"dtype": dtype, "tensor_shape": shape, "name": tensor_name}}

    return {
        "signature_def": {
            SIGNATURE: {
                "inputs": tensor(INPUT_KEY, "DT_STRING", f"{SIGNATURE}_{INPUT_KEY}:0"),
                "outputs": tensor(OUTPUT_KEY, "DT_FLOAT", "StatefulPartitionedCall:0"),
                "method_name": "tensorflow/serving/predict",
            }
        }
    }


@blueprint.post("/v1/models/<name>:predict")
@blueprint.post("/v1/models/<name>/versions/<version>:predict")
def model_predict(name: str, version: str | None = None):
    """TF Serving's Predict in row (``instances``) or columnar (``inputs``) format."""
    model = _model(name, version, need_loaded=True)
    body = _json_object()
    signature = body.get("signature_name") or SIGNATURE
    if signature != SIGNATURE:
        raise ApiError(400, f"signature {signature!r} is not served over REST here; use {SIGNATURE!r}")
    if ("instances" in body) == ("inputs" in body):
        raise ApiError(400, 'the request needs exactly one of "instances" and "inputs"')
    key, values = ("predictions", body["instances"]) if "instances" in body else ("outputs", body["inputs"])
    uploads = [Upload(data) for data in _instances(values)]
    settings = _state().settings
    if len(uploads) > settings.max_images:
        raise ApiError(400, f"too many instances: {len(uploads)}, at most {settings.max_images}")
    scored = score_uploads(model, uploads, _state().limits, settings.request_timeout_s)
    return jsonify({key: [item.probability for item in scored]})


def _json_object() -> dict[str, Any]:
    """The body as a JSON object whatever its Content-Type (TF Serving ignores it too)."""
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _instances(values: Any) -> list[bytes]:
    """Image bytes from ``instances``/``inputs``: a list of ``{"b64"}`` or ``{"image_bytes": {"b64"}}``."""
    if isinstance(values, dict) and INPUT_KEY in values:
        values = values[INPUT_KEY]  # columnar {"inputs": {"image_bytes": [...]}}
    if isinstance(values, dict):
        values = [values]
    if not isinstance(values, list) or not values:
        raise ApiError(400, 'instances must be a non-empty list of {"b64": "..."} objects')
    images = []
    for index, value in enumerate(values):
        if isinstance(value, dict) and INPUT_KEY in value:
            value = value[INPUT_KEY]
        images.append(decode_b64(value, f"instance {index}"))
    return images
