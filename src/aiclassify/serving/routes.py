"""The service's own endpoints: ``/predict``, ``/healthz``, ``/readyz``, ``/v1/faces``, ``/openapi.json``,
``/metrics``."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from aiclassify.serving import tfserving
from aiclassify.serving.apispec import (
    NO_KEY,
    PlainTextResponse,
    api,
    error_responses,
    openapi_document,
    responses,
)
from aiclassify.serving.decode_budget import DecodeClock
from aiclassify.serving.errors import ApiError
from aiclassify.serving.faces import UploadFaces
from aiclassify.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from aiclassify.serving.registry import ServedModel
from aiclassify.serving.schemas import (
    FacesInfo,
    Health,
    OpenApiDocument,
    PredictForm,
    PredictJsonRequest,
    PredictParameters,
    PredictResponse,
    Ready,
)
from aiclassify.serving.state import serving_state
from aiclassify.serving.uploads import Scored, Upload, decode_b64, naming_the_upload, score_uploads

blueprint = Blueprint("aiclassify", __name__)
blueprint.register_blueprint(tfserving.blueprint)

RAW_BODY_TYPES = ("image/", "application/octet-stream")
ERRORS = (400, 401, 404, 413, 415, 422, 500, 503)


@blueprint.get("/healthz")
@api.validate(resp=responses(Health, "Alive"), security=NO_KEY)
def healthz():
    """The process is alive."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
@api.validate(
    resp=responses(Ready, "Ready", 500, HTTP_503=(Ready, "Not every model is loaded and warmed up")),
    security=NO_KEY,
)
def readyz():
    """Every model is loaded and answered a warm-up call (200), or not yet (503). A model's load error
    (which may name paths) is shown only to a caller that sent the valid `X-API-Key`; otherwise `error`
    is null, and the error is in the server log and `GET /v1/models/<name>`."""
    registry = serving_state().registry
    show_errors = g.get("api_key_valid", False)
    models = {
        name: {"state": m.state, "version": m.version, "error": (m.error or None) if show_errors else None}
        for name, m in registry.models.items()
    }
    faces = serving_state().faces
    ready = registry.ready() and faces.ready()
    body = {"ready": ready, "models": models, "face_detector": faces.readiness(show_errors)}
    return jsonify(body), 200 if ready else 503


@blueprint.get("/v1/faces")
@api.validate(resp=responses(FacesInfo, "The face path's models, detector and limits", 401, 500))
def faces_info():
    """Whether `model=auto` can be used now: the face model that scores each face, the general model
    that scores the whole image, the face detector's state and its limits (faces per image, smallest
    face, confidence, search size, crop)."""
    state = serving_state()
    return jsonify(state.faces.describe(state.registry))


@blueprint.get("/openapi.json")
@api.validate(resp=responses(OpenApiDocument, "The OpenAPI 3.1 document", 500), security=NO_KEY)
def openapi_json():
    """This document: the OpenAPI 3.1 description of the API."""
    return jsonify(openapi_document())


@blueprint.get("/metrics")
@api.validate(
    resp=PlainTextResponse(
        HTTP_200=(None, "Prometheus text exposition format 0.0.4"), **error_responses(401, 500)
    )
)
def metrics():
    """Prometheus metrics of this worker process.

    Requests by route (URL rule) and status, latency, batch sizes, refused requests by reason, image
    decode time, explanations in progress, and the process's memory and CPU, in the Prometheus text
    format. Needs `X-API-Key` when the server has a key.
    """
    return current_app.response_class(serving_state().metrics.render(), content_type=METRICS_CONTENT_TYPE)


@blueprint.post("/predict")
@api.validate(
    query=PredictParameters,
    json=PredictJsonRequest,
    form=PredictForm,
    resp=responses(PredictResponse, "One prediction per image, in order", *ERRORS),
)
def predict():
    """Classify images as real or AI-generated.

    Send the images as multipart files in field `file` (repeatable) or `files`, as JSON
    `{"images": [{"b64": "..."}]}`, or one image as the raw request body with
    `Content-Type: image/*` or `application/octet-stream`. Parameters are read from the query
    string, then the form fields, then the JSON keys.
    """
    started = time.perf_counter()
    state = serving_state()
    parameters = _parameters()
    route = state.faces.route(state.registry, parameters.model)
    model = route.model
    threshold, point = model.threshold_for(parameters.target_fpr, parameters.operating_point)
    uploads = _collect_uploads(state.settings.max_images)
    clock = DecodeClock(state.limits.decode_budget_s)
    scored = score_uploads(
        model,
        uploads,
        state.limits,
        state.settings.request_timeout_s,
        state.metrics.observe_decode,
        clock,
        diagnose=model.image_warnings,  # from the pixels decoded for the check: no second decode
    )
    faces: list[UploadFaces | None] = [None] * len(uploads)
    if route.face_model is not None:
        faces = state.faces.score_faces(
            route.face_model,
            [item.image.data for item in scored],
            parameters.target_fpr,
            parameters.operating_point,
            route.expect_faces,
            state.settings.request_timeout_s,
            clock,
        )
        for found in faces:
            state.metrics.observe_face_detection(found.detection_ms / 1000, len(found.search.crops or ()))
    predictions = [
        _prediction(index, upload, item, model, threshold, point, found, route.face_model)
        for index, (upload, item, found) in enumerate(zip(uploads, scored, faces, strict=True))
    ]
    if parameters.explain:
        with state.explanation_slots.hold():  # at most max_concurrent_explanations at once
            for index, (prediction, item) in enumerate(zip(predictions, scored, strict=True)):
                # decodes the image twice more, within the request's decode budget
                with naming_the_upload(index, uploads, reasons=("decode_budget",)), clock.image(index):
                    explanation = model.explain(item.image.data, state.settings.max_explanation_side, clock)
                prediction["explanation"] = explanation
    return jsonify(
        {
            "model": _model_summary(model),
            "face_model": None if route.face_model is None else _model_summary(route.face_model),
            "predictions": predictions,
            "timing_ms": {"total": round((time.perf_counter() - started) * 1000, 3)},
        }
    )


def _parameters() -> PredictParameters:
    """The validated parameters: each from the query string, else the form, else the JSON body."""
    context = request.context
    sources = [source for source in (context.query, context.form, context.json) if source is not None]
    values = {}
    for name in PredictParameters.model_fields:
        given = (getattr(source, name) for source in sources)
        values[name] = next((value for value in given if value is not None), None)
    return PredictParameters.model_construct(**values)


def _collect_uploads(max_images: int) -> list[Upload]:
    """The images of the request, in order; 400 when there are none or too many."""
    context = request.context
    if context.json is not None:
        uploads = [
            Upload(decode_b64(image.b64, f"images[{i}]")) for i, image in enumerate(context.json.images)
        ]
    elif context.form is not None:
        uploads = [Upload(f.read(), f.filename or None) for f in context.form.file + context.form.files]
    elif request.mimetype.startswith(RAW_BODY_TYPES):
        uploads = [Upload(request.get_data())]
    else:
        uploads = []
    if not uploads:
        raise ApiError(
            400,
            "no image: send multipart field 'file' (repeatable) or 'files', "
            'or JSON {"images": [{"b64": "..."}]}',
            reason="no_image",
        )
    if len(uploads) > max_images:
        message = f"too many images: {len(uploads)}, at most {max_images} per request"
        raise ApiError(413, message, reason="too_many_images")
    return uploads


def _model_summary(model: ServedModel) -> dict[str, Any]:
    """Which model answered."""
    return {
        "name": model.name,
        "version": model.version,
        "run": model.metadata.get("name"),
        "architecture": model.metadata.get("model"),
        "temperature": model.temperature,
        "demo": model.is_demo,
    }


def _prediction(
    index: int,
    upload: Upload,
    item: Scored,
    model: ServedModel,
    threshold: float,
    point: str | None,
    found: UploadFaces | None = None,
    face_model: ServedModel | None = None,
) -> dict[str, Any]:
    """The verdict on one image, with the warnings (read from its pixels as decoded for its check) and
    the metadata evidence computed from the bytes as uploaded (the evidence is reported beside the
    verdict, never folded into probability_ai), and the face model's verdict on each of its faces
    (``found``), beside it too."""
    warnings = (*item.image.warnings, *(found.search.warnings if found else ()))
    verdict = model.verdict(item.probability, threshold, point, warnings, model.evidence(upload.data))
    faces = None
    if found is not None and found.verdicts is not None and face_model is not None:
        reference = {"name": face_model.name, "version": face_model.version}
        faces = [{**face.to_dict(), "model": reference} for face in found.verdicts]
    return {
        "index": index,
        "filename": upload.filename,
        "verdict": verdict.verdict,
        "band": None if verdict.band is None else verdict.band.to_dict(),
        "warnings": [warning.to_dict() for warning in verdict.warnings],
        "evidence": None if verdict.evidence is None else verdict.evidence.to_dict(),
        "label": verdict.label,
        "probability_ai": verdict.probability_ai,
        "probability_ai_uncalibrated": verdict.probability_ai_uncalibrated,
        "threshold": verdict.threshold,
        "operating_point": verdict.operating_point,
        "model": {"name": model.name, "version": model.version},
        "width": item.image.width,
        "height": item.image.height,
        "format": item.image.format,
        "converted": item.image.converted,
        "timing_ms": {
            "preprocess": round(item.preprocess_ms, 3),
            "inference": round(item.inference_ms, 3),
            "face_detection": None if found is None else round(found.detection_ms, 3),
        },
        "faces": faces,
    }
