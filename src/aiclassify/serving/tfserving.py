"""TensorFlow Serving's REST API shapes, so a client can move to TF Serving unchanged.

``POST /v1/models/<name>[/versions/<v>]:predict`` takes ``{"instances": [{"b64": ...}]}`` (or
``{"image_bytes": {"b64": ...}}`` per instance, or columnar ``{"inputs": ...}``) and answers
``{"predictions": [p, ...]}`` (``{"outputs": [...]}`` for columnar requests): the raw
``probability_ai`` the predictor computes (no calibration: that is ``/predict``'s job). For an
image too small for crops and a model trained without flips, that is exactly what TF Serving would
return for the same SavedModel; crops of large images and the mirror views of a model trained with
flips (:mod:`aiclassify.predict.crops`) are the predictor's, not the signature's. Errors are
``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from aiclassify.serving.apispec import URL_CONVERTERS, api, responses, validate_body
from aiclassify.serving.errors import ApiError, shorten
from aiclassify.serving.registry import END, ServedModel
from aiclassify.serving.schemas import (
    ModelMetadata,
    ModelStatus,
    TFServingPredictRequest,
    TFServingPredictResponse,
)
from aiclassify.serving.state import serving_state
from aiclassify.serving.uploads import Upload, decode_b64, score_uploads

blueprint = Blueprint("tfserving", __name__)

SIGNATURE = "serving_default"  # aiclassify.export.BYTES_SIGNATURE (not imported: it loads TensorFlow)
INPUT_KEY = "image_bytes"
OUTPUT_KEY = "probability_ai"
PATH_PARAMETERS = {"name": "the model's name (e.g. faces)", "version": "the model's version"}


@blueprint.record_once
def _register_url_converters(state) -> None:
    """``<segment:...>`` (no ``:`` in a name or version), known to the app before the routes below."""
    state.app.url_map.converters.update(URL_CONVERTERS)


def _model(name: str, version: str | None, need_loaded: bool) -> ServedModel:
    """The named model at ``version`` (any when None): 404 when there is none, 503 when not loaded."""
    registry = serving_state().registry
    model = registry.get(name) if need_loaded else registry.find(name)
    if version is not None and version != model.version:
        raise ApiError(404, f"Servable not found for request: Specific({name}, {shorten(version)})")
    return model


@blueprint.get("/v1/models/<segment:name>")
@blueprint.get("/v1/models/<segment:name>/versions/<segment:version>")
@api.validate(
    resp=responses(ModelStatus, "The version's state", 401, 404, 500),
    path_parameter_descriptions=PATH_PARAMETERS,
)
def model_status(name: str, version: str | None = None):
    """TensorFlow Serving model status (GetModelStatus)."""
    model = _model(name, version, need_loaded=False)
    error_code = "OK" if model.state != END else "UNKNOWN"
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


@blueprint.get("/v1/models/<segment:name>/metadata")
@blueprint.get("/v1/models/<segment:name>/versions/<segment:version>/metadata")
@api.validate(
    resp=responses(ModelMetadata, "Signatures, run metadata and thresholds", 401, 404, 500, 503),
    path_parameter_descriptions=PATH_PARAMETERS,
)
def model_metadata(name: str, version: str | None = None):
    """TensorFlow Serving model metadata (GetModelMetadata), plus this server's `aiclassify` section.

    The `aiclassify` section has the run's name, architecture, image size and classes, the
    calibration temperature, default threshold and operating points, and `calibration_source`:
    the file those were read from.
    """
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


@blueprint.post("/v1/models/<segment:name>:predict")
@blueprint.post("/v1/models/<segment:name>/versions/<segment:version>:predict")
@api.validate(
    json=TFServingPredictRequest,
    resp=responses(
        TFServingPredictResponse, "Raw probability_ai per instance", 400, 401, 404, 413, 415, 422, 500, 503
    ),
    path_parameter_descriptions=PATH_PARAMETERS,
)
def model_predict(name: str, version: str | None = None):
    """TensorFlow Serving Predict, row (`instances`) or columnar (`inputs`) format.

    The body is read as JSON whatever its Content-Type, as TensorFlow Serving does.
    """
    model = _model(name, version, need_loaded=True)
    body = _request_body()
    key = "predictions" if body.instances is not None else "outputs"
    uploads = [Upload(decode_b64(image.b64, f"instance {i}")) for i, image in enumerate(body.images())]
    state = serving_state()
    if not uploads:
        given = "instances" if body.instances is not None else "inputs"
        raise ApiError(400, f'{given} must be a non-empty list of {{"b64": "..."}} objects')
    if len(uploads) > state.settings.max_images:
        raise ApiError(
            413,
            f"too many instances: {len(uploads)}, at most {state.settings.max_images} per request",
            reason="too_many_images",
        )
    scored = score_uploads(
        model, uploads, state.limits, state.settings.request_timeout_s, state.metrics.observe_decode
    )
    return jsonify({key: [item.probability for item in scored]})


def _request_body() -> TFServingPredictRequest:
    """The validated body: spectree's for a JSON request, else the body parsed as JSON here (400 when it
    is not valid JSON, as for any JSON body)."""
    if request.context.json is not None:
        return request.context.json
    body = request.get_json(force=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the request body is not a JSON object")
    return validate_body(TFServingPredictRequest, body)
