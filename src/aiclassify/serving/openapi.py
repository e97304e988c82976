"""The OpenAPI 3.1 description served at ``/openapi.json`` (schemas are JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

from aiclassify import LABEL_NAMES, __version__

NUMBER = {"type": "number"}
STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
INTEGER = {"type": "integer"}
B64 = {
    "type": "object",
    "properties": {"b64": {"type": "string", "description": "base64 of the encoded image file"}},
    "required": ["b64"],
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(
    properties: dict[str, Any], required: list[str] | None = None, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Bad request: no image, empty file, bad JSON or base64, bad parameter, too many images",
        401: "Missing or wrong X-API-Key (only when the server has a key)",
        404: "Unknown model (or version)",
        413: "Request body larger than AICLASSIFY_MAX_UPLOAD_MB",
        415: "Image format the model does not serve (TIFF, ICO, PSD...)",
        422: "Not an image, truncated or corrupt, too large in pixels, no such operating point, "
        "or explain=true for a model that cannot explain",
        500: "Server error (logged)",
        503: "Model not loaded yet or failed to load, or timed out",
    }
    return {str(code): _json("Error", reasons[code]) for code in codes}


MODEL_PARAM = {
    "name": "model",
    "in": "query",
    "required": False,
    "schema": STRING,
    "description": "model name (e.g. faces, general); default AICLASSIFY_DEFAULT_MODEL",
}
NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": STRING}
VERSION_PARAM = {"name": "version", "in": "path", "required": True, "schema": STRING}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": STRING}),
    "Health": _obj({"status": {"const": "ok"}}),
    "Ready": _obj(
        {
            "ready": {"type": "boolean"},
            "models": {
                "type": "object",
                "additionalProperties": _obj(
                    {
                        "state": {"enum": ["LOADING", "AVAILABLE", "END"]},
                        "version": STRING,
                        "error": NULLABLE_STRING,
                    }
                ),
            },
        }
    ),
    "ModelSummary": _obj(
        {
            "name": STRING,
            "version": STRING,
            "run": NULLABLE_STRING,
            "architecture": NULLABLE_STRING,
            "temperature": NUMBER,
        }
    ),
    "ImagePrediction": _obj(
        {
            "index": INTEGER,
            "filename": NULLABLE_STRING,
            "label": {"enum": list(LABEL_NAMES)},
            "probability_ai": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "calibrated P(AI-generated) when the run has a temperature",
            },
            "probability_ai_uncalibrated": {"type": "number", "minimum": 0, "maximum": 1},
            "threshold": {
                "type": "number",
                "description": "label is ai-generated when probability_ai >= threshold",
            },
            "operating_point": NULLABLE_STRING,
            "model": _obj({"name": STRING, "version": STRING}),
            "width": INTEGER,
            "height": INTEGER,
            "format": STRING,
            "converted": {
                "type": "boolean",
                "description": "re-encoded as PNG (EXIF rotation, mode, animation) before the model",
            },
            "timing_ms": _obj({"preprocess": NUMBER, "inference": NUMBER}),
            "explanation": _ref("Explanation"),
        },
        required=[
            "index",
            "filename",
            "label",
            "probability_ai",
            "probability_ai_uncalibrated",
            "threshold",
            "operating_point",
            "model",
            "width",
            "height",
            "format",
            "converted",
            "timing_ms",
        ],
    ),
    "Explanation": {
        **_obj(
            {
                "method": {"const": "grad-cam"},
                "layer": {**STRING, "description": "the convolutional layer whose feature maps are weighted"},
                "overlay_png_b64": {
                    **STRING,
                    "description": "base64 PNG: the heatmap of P(AI-generated) in "
                    "the jet colormap blended over the image as the model decoded it",
                },
            }
        ),
        "description": "only with explain=true; needs a model served from a run directory",
    },
    "PredictResponse": _obj(
        {
            "model": _ref("ModelSummary"),
            "predictions": {"type": "array", "items": _ref("ImagePrediction")},
            "timing_ms": _obj({"total": NUMBER}),
        }
    ),
    "PredictJsonRequest": _obj(
        {
            "images": {"type": "array", "items": B64, "minItems": 1},
            "model": STRING,
            "target_fpr": NUMBER,
            "operating_point": STRING,
            "explain": {"type": ["boolean", "string"]},
        },
        required=["images"],
    ),
    "TFServingPredictRequest": {
        "type": "object",
        "properties": {
            "signature_name": {"const": "serving_default"},
            "instances": {"type": "array", "items": {"anyOf": [B64, _obj({"image_bytes": B64})]}},
            "inputs": {
                "anyOf": [
                    {"type": "array", "items": B64},
                    _obj({"image_bytes": {"type": "array", "items": B64}}),
                ]
            },
        },
    },
    "TFServingPredictResponse": {
        "oneOf": [
            _obj({"predictions": {"type": "array", "items": NUMBER}}),
            _obj({"outputs": {"type": "array", "items": NUMBER}}),
        ],
        "description": "raw (uncalibrated) probability_ai per instance, as TensorFlow Serving returns it",
    },
    "ModelStatus": _obj(
        {
            "model_version_status": {
                "type": "array",
                "items": _obj(
                    {
                        "version": STRING,
                        "state": {"enum": ["LOADING", "AVAILABLE", "END"]},
                        "status": _obj({"error_code": STRING, "error_message": STRING}),
                    }
                ),
            }
        }
    ),
    "ModelMetadata": _obj(
        {
            "model_spec": _obj({"name": STRING, "signature_name": STRING, "version": STRING}),
            "metadata": _obj(
                {
                    "signature_def": {"type": "object", "required": ["signature_def"]},
                    "aiclassify": {
                        "type": "object",
                        "required": ["name", "version", "threshold", "temperature", "operating_points"],
                    },
                }
            ),
        }
    ),
}


def _predict_operation() -> dict[str, Any]:
    multipart = _obj(
        {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "model": STRING,
            "target_fpr": NUMBER,
            "operating_point": STRING,
            "explain": STRING,
        },
        required=[],
        closed=False,
    )
    return {
        "summary": "Classify images as real or AI-generated",
        "parameters": [
            MODEL_PARAM,
            {
                "name": "target_fpr",
                "in": "query",
                "required": False,
                "schema": NUMBER,
                "description": "use the stored operating point for this false-positive rate (e.g. 0.01)",
            },
            {
                "name": "operating_point",
                "in": "query",
                "required": False,
                "schema": STRING,
                "description": "use the stored operating point with this name (e.g. balanced)",
            },
            {
                "name": "explain",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean"},
                "description": "add a Grad-CAM heatmap overlay to each prediction (slower; 422 when the "
                "model is not served from a run directory with model.keras)",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": _ref("PredictJsonRequest")},
                "image/*": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": _json("PredictResponse", "One prediction per image, in order"),
            **_errors(400, 401, 404, 413, 415, 422, 500, 503),
        },
    }


def _tf_predict_operation(versioned: bool) -> dict[str, Any]:
    return {
        "summary": "TensorFlow Serving Predict (row or columnar format)",
        "parameters": [NAME_PARAM] + ([VERSION_PARAM] if versioned else []),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("TFServingPredictRequest")}},
        },
        "responses": {
            "200": _json("TFServingPredictResponse", "Raw probability_ai per instance"),
            **_errors(400, 401, 404, 413, 415, 422, 500, 503),
        },
    }


def _get(
    summary: str, schema: str, errors: tuple[int, ...], parameters: list | None = None
) -> dict[str, Any]:
    responses = {"200": _json(schema, summary), **_errors(*errors)}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def spec() -> dict[str, Any]:
    """The whole OpenAPI document."""
    status_errors = (401, 404, 500)
    metadata_errors = (401, 404, 500, 503)
    versioned = [NAME_PARAM, VERSION_PARAM]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aiclassify inference API",
            "version": __version__,
            "description": "Tell AI-generated images from real ones. See docs/api.md.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
        "security": [{}, {"apiKey": []}],  # the key is needed only when AICLASSIFY_API_KEY is set
        "paths": {
            "/predict": {"post": _predict_operation()},
            "/healthz": {
                "get": {"summary": "The process is alive", "responses": {"200": _json("Health", "alive")}}
            },
            "/readyz": {
                "get": {
                    "summary": "Every model loaded and warmed up",
                    "responses": {"200": _json("Ready", "ready"), "503": _json("Ready", "not ready")},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
                }
            },
            "/v1/models/{name}": _get("TF Serving model status", "ModelStatus", status_errors, [NAME_PARAM]),
            "/v1/models/{name}/versions/{version}": _get(
                "TF Serving model status of one version", "ModelStatus", status_errors, versioned
            ),
            "/v1/models/{name}/metadata": _get(
                "TF Serving model metadata", "ModelMetadata", metadata_errors, [NAME_PARAM]
            ),
            "/v1/models/{name}/versions/{version}/metadata": _get(
                "TF Serving model metadata of one version", "ModelMetadata", metadata_errors, versioned
            ),
            "/v1/models/{name}:predict": {"post": _tf_predict_operation(False)},
            "/v1/models/{name}/versions/{version}:predict": {"post": _tf_predict_operation(True)},
        },
    }
