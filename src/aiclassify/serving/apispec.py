"""Request validation and the generated OpenAPI document, both by spectree from :mod:`.schemas`.

Every route is decorated with ``api.validate(...)``: spectree validates its query string, JSON or
form body against the declared models before the view runs (the view reads the results from
``request.context``), validates the view's JSON answer against the model declared for its status,
and generates the OpenAPI 3.1 document served at ``/openapi.json`` from the same declarations.
spectree's own documentation pages (``/apidoc/...``) are not registered: they load their scripts
from CDNs.

Failures keep the API's error contract: a request that fails validation gets 400
``{"error": "<parameter> ..."}``; an answer that fails it (a server bug) a logged 500
``{"error": ...}``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.plugins.flask_plugin import FlaskPlugin
from werkzeug.routing import BaseConverter

from aiclassify import __version__
from aiclassify.serving.errors import ApiError
from aiclassify.serving.schemas import Error

SECURITY_SCHEME = "apiKey"
NO_KEY: list[Any] = []  # an operation's security when it never needs the key
ERROR_REASONS = {
    400: "Bad request: no image, empty file, bad JSON or base64, bad parameter",
    401: "Missing or wrong X-API-Key (only when the server has a key)",
    404: "Unknown model (or version)",
    413: "Request over a limit of this deployment (the message names it): body larger than "
    "AICLASSIFY_MAX_UPLOAD_MB, a multipart body over AICLASSIFY_MAX_FORM_PARTS or "
    "AICLASSIFY_MAX_FORM_FIELD_KB, more images than AICLASSIFY_MAX_IMAGES, more pixels than "
    "AICLASSIFY_MAX_REQUEST_PIXELS or more decoding than AICLASSIFY_DECODE_BUDGET_S",
    414: "Request target (path and query) longer than AICLASSIFY_MAX_URL_BYTES",
    415: "Image format the model does not serve (TIFF, ICO, PSD...), or a compressed body (Content-Encoding)",
    422: "Not an image, truncated or corrupt, too large in pixels, no such operating point, "
    "or explain=true for a model that cannot explain",
    431: "A header field longer than AICLASSIFY_MAX_HEADER_BYTES",
    500: "Server error (logged)",
    503: "Model not loaded yet or failed to load, or timed out, or (explain=true) too many explanations "
    "in progress",
}
MAX_REPORTED_ERRORS = 3
RULE_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")  # <converter(arguments):name> in a URL rule

Body = TypeVar("Body", bound=BaseModel)


class PathSegmentConverter(BaseConverter):
    """A URL variable that is one path segment without ``:``, so that ``/v1/models/faces:predict`` is the
    model ``faces`` and the verb ``predict``, never a model called ``faces:predict``: a GET there is a
    405 (POST only), not a status lookup of that name."""

    regex = "[^/:]+"
    schema = {"type": "string", "pattern": "^[^/:]+$"}  # what the document says of such a variable


URL_CONVERTERS = {"segment": PathSegmentConverter}  # registered on the app by the blueprints using them


class PlainTextResponse(Response):
    """spectree's ``Response``, declaring a ``text/plain`` string body for each status given without a
    model (spectree itself declares only JSON bodies); those answers are not validated."""

    def __init__(self, *codes: str, media_type: str = "text/plain", **code_models: Any):
        super().__init__(*codes, **code_models)
        self.media_type = media_type

    def generate_spec(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """spectree's responses, each model-less status with its plain-text body."""
        spec = super().generate_spec(*args, **kwargs)
        for code in self.codes:
            spec[code.removeprefix("HTTP_")]["content"] = {self.media_type: {"schema": {"type": "string"}}}
        return spec


class ResponseValidationError(RuntimeError):
    """A view answered something its declared response model does not allow."""


class ApiPlugin(FlaskPlugin):
    """spectree's Flask plugin, validating a route's JSON model only when the request is JSON, and
    naming operations after their method and path.

    spectree validates the JSON model whenever the body is not a form, so a raw ``image/*`` body
    on ``/predict`` would be validated as ``{}`` and fail; such bodies are read by the view.
    """

    def request_validation(self, request, query, json, form, headers, cookies):
        """spectree's validation; a request that fails it is answered here, as the ``before`` hook
        answers it (:func:`_before`), because spectree would first serialise the error, the client's
        values included, as JSON: an uploaded file sent where a form parameter belongs (``model``)
        cannot be, and would be a 500."""
        try:
            super().request_validation(
                request, query, json if request.is_json else None, form, headers, cookies
            )
        except ValidationError as error:
            _before(request, None, error, None, None)
            raise

    def parse_path(self, route, path_parameter_descriptions):
        """spectree's path and path parameters, with the schema of this API's own URL converters
        (:data:`URL_CONVERTERS`; spectree knows only Werkzeug's)."""
        path, parameters = super().parse_path(route, path_parameter_descriptions)
        converter_names = {variable: converter for converter, variable in RULE_VARIABLE.findall(str(route))}
        for parameter in parameters:
            converter = URL_CONVERTERS.get(converter_names.get(parameter["name"], ""))
            if converter is not None:
                parameter["schema"] = dict(converter.schema)
        return path, parameters

    def get_func_operation_id(self, func, path: str, method: str) -> str:
        """``post_v1_models_name_predict`` for ``POST /v1/models/{name}:predict``."""
        return "_".join([method.lower(), *re.findall(r"[A-Za-z0-9]+", path)])


def describe_validation_error(error: ValidationError) -> str:
    """A readable message naming each bad parameter: ``target_fpr must be a number, not 'abc'``.

    Messages raised by :mod:`.schemas` validators say what the value must be and follow the name;
    pydantic's own messages follow ``name:``.
    """
    parts = []
    for item in error.errors(include_url=False)[:MAX_REPORTED_ERRORS]:
        where = _location(item["loc"])
        if item["type"] == "value_error":
            message = str(item["ctx"]["error"])
            parts.append(f"{where} {message}" if where else message)
        else:
            parts.append(f"{where}: {item['msg']}" if where else item["msg"])
    more = error.error_count() - MAX_REPORTED_ERRORS
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _location(loc: tuple[Any, ...]) -> str:
    """``("images", 0, "b64")`` as ``images[0].b64``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate_body(model: type[Body], data: Any) -> Body:
    """``data`` validated as ``model``, for a body spectree did not validate; 400 when it fails."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError(400, describe_validation_error(error)) from None


def _before(req, resp, error: ValidationError | None, instance, model_adapter) -> None:
    """After request validation: a JSON body that is not valid JSON (the request class's 400) or not an
    object, or a failed validation, is a 400."""
    if req.method == "POST" and req.is_json and not isinstance(req.get_json(), dict):
        raise ApiError(400, "the request body is not a JSON object", reason="invalid_json")
    if error is not None:
        raise ApiError(400, describe_validation_error(error), reason="invalid_request")


def _after(req, resp, error: ValidationError | None, instance, model_adapter) -> None:
    """After response validation: an answer that breaks its own schema is a server error."""
    if error is not None:
        problems = describe_validation_error(error)
        raise ResponseValidationError(f"{req.method} {req.path} answered against its schema: {problems}")


HEAD_LIMIT_ERRORS = (414, 431)
"""What every operation may answer: the request head limits are checked before any route runs."""


def error_responses(*error_codes: int) -> dict[str, tuple[type[BaseModel], str]]:
    """:class:`Error` with its reason for each of ``error_codes`` and :data:`HEAD_LIMIT_ERRORS`, as
    spectree's ``Response`` keywords."""
    return {f"HTTP_{code}": (Error, ERROR_REASONS[code]) for code in (*error_codes, *HEAD_LIMIT_ERRORS)}


def responses(ok: type[BaseModel], description: str, *error_codes: int, **others: Any) -> Response:
    """spectree's ``Response``: ``ok`` for 200, :class:`Error` for each of ``error_codes`` and for the
    request head limits every operation enforces."""
    return Response(HTTP_200=(ok, description), **error_responses(*error_codes), **others)


api = SpecTree(
    "flask",
    backend=ApiPlugin,
    title="aiclassify inference API",
    version=__version__,
    description="Tell AI-generated images from real ones. See docs/api.md.",
    annotations=False,
    page_templates={},
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_status=400,
    validation_error_model=Error,
    before=_before,
    after=_after,
    security_schemes=[
        SecurityScheme(
            name=SECURITY_SCHEME, data=SecuritySchemeData(type="apiKey", name="X-API-Key", field_in="header")
        )
    ],
    security=[{}, {SECURITY_SCHEME: []}],  # the key is needed only when AICLASSIFY_API_KEY is set
)


def openapi_document() -> dict[str, Any]:
    """The generated OpenAPI document, from the routes of the current app.

    spectree generates it once and caches it; every app registers the same routes, so it is the
    same for all of them.
    """
    return api.spec
