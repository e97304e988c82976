"""Every request and response body of the API, declared once as pydantic models.

spectree (:mod:`.apispec`) validates requests against the request models and generates the
OpenAPI document from all of them; pydantic emits JSON Schema 2020-12, so the document is
OpenAPI 3.1. A value copied from a run's ``metadata.json`` as it is (``classes``, ``dataset``,
``metrics``) is typed loosely, so that an unusual but valid run never fails response validation.

Parameter errors read ``<parameter> must be ...``: :func:`.apispec.describe_validation_error`
puts the parameter's name in front of the messages raised here.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    RootModel,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from werkzeug.datastructures import FileStorage

from aiclassify import LABEL_NAMES
from aiclassify.evidence import DECLARED, SOURCES, STRENGTHS
from aiclassify.predict.band import VERDICTS
from aiclassify.predict.diagnostics import WARNING_CODES
from aiclassify.predict.faces import FACE_WARNING_CODES
from aiclassify.serving.errors import quoted, shorten

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

# An empty image list is rejected by the view after it has found the model, so that an unknown model
# is a 404 whatever the body; the document still says at least one.
AT_LEAST_ONE = {"minItems": 1}
TF_SERVING_FORMATS = ("instances", "inputs")  # a TF Serving request has exactly one
UPLOAD_FIELDS = ("file", "files")  # a /predict form has at least one file, in either
NULL, EMPTY = {"type": "null"}, {"const": ""}  # schemas of a null value and of an empty one
ANNOTATION_KEYWORDS = ("title", "description", "default", "examples")

# Base64 as the server reads it: the standard or URL-safe alphabet (mixed is fine), ASCII whitespace
# anywhere (line-wrapped output of `base64`), padding optional, never empty. BASE64_PATTERN says so in
# the document; _base64 checks the same without a regular expression walking every character.
_B64, _SPACE = "[A-Za-z0-9+/_-]", "[ \\t\\r\\n]*"
_QUAD = f"(?:{_B64}{_SPACE}){{4}}"
_TAIL = f"(?:{_B64}{_SPACE}){{2}}(?:={_SPACE}){{0,2}}|(?:{_B64}{_SPACE}){{3}}(?:={_SPACE})?"
BASE64_PATTERN = f"^{_SPACE}(?:{_QUAD})*(?:{_QUAD}|{_TAIL})$"
BASE64_ALPHABET = re.compile("[A-Za-z0-9+/_-]*")
ASCII_WHITESPACE = str.maketrans("", "", " \t\r\n")
MOST_PADDING = {0: 0, 2: 2, 3: 1}  # "=" allowed after the data, by its length modulo 4 (1 is never valid)
ModelState = Literal["LOADING", "AVAILABLE", "END"]  # TensorFlow Serving's state names
Label = Literal[LABEL_NAMES]
VerdictName = Literal[VERDICTS]
WarningCode = Literal[WARNING_CODES + FACE_WARNING_CODES]
EvidenceSource = Literal[SOURCES]
EvidenceStrength = Literal[STRENGTHS]
Declared = Literal[DECLARED]


def _fraction(value: Any) -> float:
    """A number strictly between 0 and 1, from a number or its text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a number, not {quoted(value)}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too large for a float (1e309 written out)
        raise ValueError(f"must be between 0 and 1, not {shorten(str(value))}") from None
    except ValueError:
        raise ValueError(f"must be a number, not {quoted(value)}") from None
    if not (math.isfinite(number) and 0.0 < number < 1.0):
        raise ValueError(f"must be between 0 and 1, not {shorten(str(value))}")
    return number


def _base64(value: str) -> str:
    """``value`` when it is base64 as :data:`BASE64_PATTERN` says (the view decodes it)."""
    text = value.translate(ASCII_WHITESPACE)
    data = text.rstrip("=")
    padding = len(text) - len(data)
    if not (data and BASE64_ALPHABET.fullmatch(data) and padding <= MOST_PADDING.get(len(data) % 4, -1)):
        raise ValueError("must be base64 (standard or URL-safe alphabet, padding optional), not empty")
    return value


def _flag(value: Any) -> bool:
    """A boolean from JSON ``true``/``false`` or true/false, 1/0, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"must be true or false, not {quoted(value)}")


def _file(value: Any) -> FileStorage:
    """An uploaded file (not a plain form field of the same name)."""
    if not isinstance(value, FileStorage):
        raise ValueError("must be an uploaded file, not a plain form field")
    return value


def _as_list(value: Any) -> list[Any]:
    """One form value or several: a list either way."""
    return value if isinstance(value, list) else [value]


Fraction = Annotated[float, Field(gt=0, lt=1), BeforeValidator(_fraction)]
Flag = Annotated[bool, BeforeValidator(_flag)]
UploadedFile = Annotated[
    FileStorage,
    PlainValidator(_file),
    WithJsonSchema({"type": "string", "format": "binary", "minLength": 1}),  # an empty file is a 400
]
UploadedFiles = Annotated[list[UploadedFile], BeforeValidator(_as_list)]


class Closed(BaseModel):
    """A response object: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


def _parameter_values(schema: dict[str, Any], nullable: bool) -> None:
    """The document's optional parameters as :class:`Parameters` reads them: an empty value is left out
    too (so ``target_fpr=`` is no number, but valid), and null only where ``nullable`` (in JSON; in a
    query string or form ``null`` is the text "null", and left out has no null default)."""
    for name, field in schema.get("properties", {}).items():
        if name in UPLOAD_FIELDS or name in schema.get("required", []):
            continue
        annotations = {key: field.pop(key) for key in ANNOTATION_KEYWORDS if key in field}
        branches = field.pop("anyOf", None) or [dict(field)]
        field.clear()
        if not nullable:
            branches = [branch for branch in branches if branch != NULL]
            annotations.pop("default", None)
        if not any(branch.get("type") == "string" for branch in branches):
            branches.append(EMPTY)
        field.update(branches[0] if len(branches) == 1 else {"anyOf": branches}, **annotations)


def _given_or_left_out(schema: dict[str, Any]) -> None:
    """A query string's or form's parameters: a value, empty or left out, never null."""
    _parameter_values(schema, nullable=False)


def _given_null_or_left_out(schema: dict[str, Any]) -> None:
    """A JSON body's parameters: a value, empty, null or left out."""
    _parameter_values(schema, nullable=True)


class Parameters(BaseModel):
    """Request parameters; unknown ones are ignored and an empty one counts as absent (an empty form
    field in place of a file is no file, though: a 400)."""

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value != "" or key in UPLOAD_FIELDS}
        return data


# --- requests ---------------------------------------------------------------------------------------


class PredictParameters(Parameters):
    """What ``/predict`` takes in the query string, as form fields or as JSON keys (in that order)."""

    model_config = ConfigDict(json_schema_extra=_given_or_left_out)

    model: str | None = Field(
        None,
        description="model name (e.g. faces, general), or auto: the whole image by the general model "
        "and every face found by the face model (GET /v1/faces says whether it is available); "
        "default AICLASSIFY_DEFAULT_MODEL",
    )
    target_fpr: Fraction | None = Field(
        None,
        description="use the stored operating point for this false-positive rate (e.g. 0.01)",
    )
    operating_point: str | None = Field(
        None, description="use the stored operating point with this name (e.g. fpr_1pct, balanced)"
    )
    explain: Flag | None = Field(
        None,
        description="add a Grad-CAM heatmap overlay to each prediction (slower; 422 when the model's "
        "run directory has no model.keras)",
    )

    @field_validator("model", "target_fpr", "operating_point", "explain", mode="before")
    @classmethod
    def _one_value(cls, value: Any) -> Any:
        """A parameter given more than once (``?model=&model=faces`` reads as a list) is a 400 naming it,
        never its first value."""
        if isinstance(value, list):
            raise ValueError(f"must be given once, as one value, not {quoted(value)}")
        return value


def _form_with_files(schema: dict[str, Any]) -> None:
    """The document's ``/predict`` form: parameters given or left out, and at least one file, in
    ``file`` or ``files`` (the view answers 400 "no image" otherwise)."""
    _given_or_left_out(schema)
    schema["anyOf"] = [{"required": [name]} for name in UPLOAD_FIELDS]


class PredictForm(PredictParameters):
    """``/predict`` as ``multipart/form-data``: image files in ``file`` (repeatable) or ``files``."""

    model_config = ConfigDict(json_schema_extra=_form_with_files)

    file: UploadedFiles = Field(
        default_factory=list, description="image files, in order", json_schema_extra=AT_LEAST_ONE
    )
    files: UploadedFiles = Field(
        default_factory=list,
        description="more image files, after those of file",
        json_schema_extra=AT_LEAST_ONE,
    )


class Base64Image(BaseModel):
    """One encoded image file as base64 (standard or URL-safe alphabet, padding optional)."""

    b64: Annotated[str, AfterValidator(_base64)] = Field(
        description="base64 of the encoded image file",
        json_schema_extra={"contentEncoding": "base64", "pattern": BASE64_PATTERN},
    )


class PredictJsonRequest(PredictParameters):
    """``/predict`` as JSON (where a parameter may also be null: left out)."""

    model_config = ConfigDict(json_schema_extra=_given_null_or_left_out)

    images: list[Base64Image] = Field(json_schema_extra=AT_LEAST_ONE, description="the images, in order")


class ImageBytes(BaseModel):
    """A TensorFlow Serving row instance naming the signature's input."""

    image_bytes: Base64Image


class ImageBytesColumn(BaseModel):
    """TensorFlow Serving's columnar inputs naming the signature's input."""

    image_bytes: list[Base64Image] = Field(json_schema_extra=AT_LEAST_ONE)


def _exactly_one_format(schema: dict[str, Any]) -> None:
    """The document's TF Serving request: ``instances`` or ``inputs``, never both nor neither, and neither
    of them null (left out is not null: no null default)."""
    schema["oneOf"] = [{"required": [name]} for name in TF_SERVING_FORMATS]
    for name in TF_SERVING_FORMATS:
        schema["properties"][name].pop("default", None)


class TFServingPredictRequest(BaseModel):
    """TensorFlow Serving's Predict request: exactly one of ``instances`` (row format) and ``inputs``
    (columnar)."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_format)

    signature_name: Literal["serving_default", ""] | None = Field(None, description="empty: serving_default")
    instances: list[Base64Image | ImageBytes] = Field(None, json_schema_extra=AT_LEAST_ONE)
    inputs: list[Base64Image] | ImageBytesColumn = Field(None, json_schema_extra=AT_LEAST_ONE)

    @model_validator(mode="after")
    def _one_format(self) -> TFServingPredictRequest:
        if (self.instances is None) == (self.inputs is None):
            raise ValueError('the request needs exactly one of "instances" and "inputs"')
        return self

    def images(self) -> list[Base64Image]:
        """The images, in order, whichever format was sent."""
        if self.instances is not None:
            return [i.image_bytes if isinstance(i, ImageBytes) else i for i in self.instances]
        assert self.inputs is not None
        return self.inputs.image_bytes if isinstance(self.inputs, ImageBytesColumn) else self.inputs


# --- responses --------------------------------------------------------------------------------------


class Error(Closed):
    """Every error: what was wrong, never a stack trace."""

    error: str


class Health(Closed):
    """The process is alive."""

    status: Literal["ok"]


class ModelReadiness(Closed):
    """One model's loading state."""

    state: ModelState
    version: str
    error: str | None = Field(
        description="Why the model failed to load; only for a caller that sent the valid X-API-Key, "
        "else null (the error is in the server log and GET /v1/models/{name})"
    )


DetectorState = Literal["LOADING", "AVAILABLE", "END", "DISABLED"]


class DetectorReadiness(Closed):
    """The face detector's loading state."""

    state: DetectorState
    error: str | None = Field(description="why it failed to load; only for a caller with the valid X-API-Key")


class Ready(Closed):
    """Whether every model, and the face detector when the face model is served, is loaded and
    answered a warm-up call."""

    ready: bool
    models: dict[str, ModelReadiness]
    face_detector: DetectorReadiness | None = Field(
        description="null when this server does not detect faces (no face model, or "
        "AICLASSIFY_FACE_DETECTION=0)"
    )


class FaceDetectorSettings(Closed):
    """The face detector's state and limits."""

    state: DetectorState
    max_faces: int = Field(description="faces scored per image: the most confident")
    min_face_size: int = Field(description="pixels: a face whose box's longer side is smaller is not scored")
    min_confidence: float = Field(description="detector confidence below which a face is not scored")
    max_search_side: int = Field(description="pixels: a larger image is searched on a copy shrunk to this")
    crop: str = Field(description="how each face is cut out: aligned (FFHQ's alignment) or box")
    crop_size: int = Field(description="the side of each face's crop, in pixels, before the face model")


class FacesInfo(Closed):
    """Whether model=auto is available: the face model, the general model and the detector."""

    available: bool = Field(description="model=auto can be used now")
    face_model: str = Field(description="the model that scores each face (model=auto and model=faces)")
    general_model: str = Field(description="the model that scores the whole image under model=auto")
    detector: FaceDetectorSettings | None = Field(description="null when this server does not detect faces")
    note: str | None = Field(description="why model=auto is not available; null when it is")


class ModelRef(Closed):
    """Which model scored an image."""

    name: str
    version: str


class ModelSummary(Closed):
    """Which model answered."""

    name: str
    version: str
    run: str | None = Field(description="the run's name")
    architecture: str | None = Field(description="the model builder's name")
    temperature: float
    demo: bool = Field(description="a demo model, trained on synthetic toy images: it detects nothing real")


class ImageTiming(Closed):
    """Milliseconds spent on one image; ``inference`` includes waiting for the batch."""

    preprocess: float
    inference: float
    face_detection: float | None = Field(
        None, description="finding and cropping the faces (null when faces were not searched)"
    )


class Explanation(Closed):
    """Only with explain=true; needs a model whose run directory has model.keras."""

    method: Literal["grad-cam"]
    layer: str = Field(description="the convolutional layer whose feature maps are weighted")
    overlay_png_b64: str = Field(
        description="base64 PNG: the heatmap of P(AI-generated) in the jet colormap blended over the "
        "image as the model decoded it"
    )


class BandThresholds(Closed):
    """The inconclusive band: ai-generated when probability_ai >= upper, else real when <= lower,
    else inconclusive."""

    lower: float
    upper: float


class ImageWarningInfo(Closed):
    """Something that makes the verdict on this image unreliable."""

    code: WarningCode
    message: str = Field(description="what it means, for people")


class EvidenceFinding(Closed):
    """One thing the image's metadata says (docs/evidence.md lists every finding)."""

    source: EvidenceSource = Field(description="where it was read: c2pa, xmp, exif, text_chunks or jpeg")
    finding: str = Field(
        description="a short code: c2pa_manifest, c2pa_absent, c2pa_remote, c2pa_not_checked, "
        "digital_source_type, generator_parameters, generator_software, camera_exif, no_camera_exif, "
        "jpeg_quality, unreadable... (docs/evidence.md)"
    )
    strength: EvidenceStrength = Field(
        description="how hard it is to fake: strong (a valid, trusted C2PA signature), weak (anything "
        "anyone can write or strip), info (context that says nothing either way)"
    )
    detail: str = Field(
        description="what it says and what it does not mean, for people; values truncated and escaped"
    )


class Evidence(Closed):
    """What the image's metadata declares, beside the model's verdict and never merged into it."""

    declared: Declared = Field(
        description="ai-generated (signed, valid|untrusted|invalid) when a C2PA manifest declares a "
        "generative-AI digital source type; ai-generated (metadata, unsigned) when only unsigned "
        "metadata does; none otherwise, which does not mean the image is real"
    )
    findings: list[EvidenceFinding]


class Point(RootModel[tuple[float, float]]):
    """``[x, y]`` in pixels of the upright image."""


class FaceLandmarks(Closed):
    """The detector's five facial points; left and right are sides of the image."""

    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point


class FacePrediction(Closed):
    """The face model's verdict on one face of the image."""

    index: int = Field(ge=0, description="0 for the leftmost face, then left to right")
    box: tuple[int, int, int, int] = Field(
        description="[x, y, width, height] in pixels of the image upright by its EXIF orientation"
    )
    detector_confidence: float = Field(ge=0, le=1)
    landmarks: FaceLandmarks
    verdict: VerdictName = Field(description="by the face model's inconclusive band, as for the image")
    label: Label
    probability_ai: float = Field(ge=0, le=1, description="the face model's calibrated P(AI-generated)")
    probability_ai_uncalibrated: float = Field(ge=0, le=1)
    threshold: float
    operating_point: str | None
    band: BandThresholds | None
    warnings: list[ImageWarningInfo] = Field(
        description="what makes this face's verdict unreliable (small_face...)"
    )
    model: ModelRef


class ImagePrediction(Closed):
    """The verdict on one image."""

    index: int
    filename: str | None
    verdict: VerdictName = Field(
        description="by the model's inconclusive band: ai-generated when probability_ai >= band.upper, "
        "real when <= band.lower, else inconclusive; equals label when the model has no band"
    )
    band: BandThresholds | None = Field(
        description="the band the verdict used; null when the run has not been evaluated with one"
    )
    warnings: list[ImageWarningInfo] = Field(
        description="what makes this verdict unreliable (image size, JPEG quality, greyscale, "
        "transparency, a demo model); empty when nothing is known to"
    )
    evidence: Evidence | None = Field(
        description="Content Credentials, XMP, EXIF and generator metadata, read offline; reported "
        "beside the verdict: it never changes probability_ai"
    )
    label: Label = Field(
        description="the thresholded decision: ai-generated when probability_ai >= threshold"
    )
    probability_ai: float = Field(
        ge=0, le=1, description="calibrated P(AI-generated) when the run has a temperature"
    )
    probability_ai_uncalibrated: float = Field(ge=0, le=1)
    threshold: float = Field(description="label is ai-generated when probability_ai >= threshold")
    operating_point: str | None
    model: ModelRef
    width: int = Field(description="pixels of the upload as stored (before its EXIF orientation)")
    height: int = Field(description="pixels of the upload as stored (before its EXIF orientation)")
    format: str
    converted: bool = Field(
        description="re-encoded as PNG (EXIF rotation, mode, animation) before reaching the model"
    )
    timing_ms: ImageTiming
    faces: list[FacePrediction] | None = Field(
        description="with model=auto or model=faces, each face found, scored by the face model beside "
        "(never merged into) the image's verdict; [] when none was found; null when faces were not "
        "searched (another model, or face detection failed: see warnings)"
    )
    explanation: Explanation | None = None


class RequestTiming(Closed):
    """Milliseconds spent on the whole request."""

    total: float


class PredictResponse(Closed):
    """One prediction per image, in the order sent."""

    model: ModelSummary
    face_model: ModelSummary | None = Field(
        description="the model that scored the faces (model=auto or model=faces); null otherwise"
    )
    predictions: list[ImagePrediction]
    timing_ms: RequestTiming


class TFServingPredictions(Closed):
    """Row format answer."""

    predictions: list[float]


class TFServingOutputs(Closed):
    """Columnar format answer."""

    outputs: list[float]


class TFServingPredictResponse(RootModel[TFServingPredictions | TFServingOutputs]):
    """Raw (uncalibrated) probability_ai per instance, as TensorFlow Serving returns it."""


class Status(Closed):
    """A TensorFlow Serving status."""

    error_code: str
    error_message: str


class ModelVersionStatus(Closed):
    """One version's state."""

    version: str
    state: ModelState
    status: Status


class ModelStatus(Closed):
    """TensorFlow Serving's GetModelStatus answer."""

    model_version_status: list[ModelVersionStatus]


class ModelSpec(Closed):
    """Which model and version answered."""

    name: str
    signature_name: str
    version: str


class OperatingPointInfo(Closed):
    """A stored threshold on the calibrated probability."""

    name: str
    target_fpr: float | None
    threshold: float


class BandValidation(Closed):
    """How the band decided the validation split it was chosen on (null: not measured)."""

    model_config = ConfigDict(extra="allow")

    coverage: float | None = Field(None, description="share of images with a confident verdict")
    confident_accuracy: float | None = Field(None, description="accuracy of the confident verdicts")
    fpr: float | None = Field(None, description="share of real images called ai-generated")
    recall: float | None = Field(None, description="share of AI-generated images called ai-generated")
    fnr: float | None = Field(None, description="share of AI-generated images called real")


class BandInfo(Closed):
    """The inconclusive band in use, from calibration.json."""

    lower: float
    upper: float
    target_fpr: float | None = Field(
        description="the rate both ends were chosen for on validation (real called ai-generated, "
        "AI-generated called real)"
    )
    confidence: float | None = Field(
        description="the confidence with which validation kept each rate within target_fpr (its "
        "one-sided Clopper-Pearson upper bound); null: the rates themselves (runs evaluated before)"
    )
    notes: list[str] = Field(
        description="why an end of the band lies beyond every score (too few validation images of a "
        "class to bound its rate): nothing is called ai-generated, or real; empty otherwise"
    )
    empty: bool = Field(description="the thresholds crossed on validation: no image is inconclusive")
    validation: BandValidation | None


class ModelDescription(Closed):
    """This server's view of a model: run metadata, calibration and thresholds."""

    name: str
    version: str
    state: ModelState
    run: str | None
    architecture: str | None
    image_size: int | None
    classes: Any
    temperature: float
    threshold: float = Field(description="the default threshold, on the calibrated scale")
    operating_points: list[OperatingPointInfo]
    band: BandInfo | None = Field(description="the inconclusive band; null when the run has none")
    band_note: str | None = Field(
        description="why there is no band (e.g. 'no band: the run has not been evaluated'); "
        "null when there is one"
    )
    demo: bool = Field(description="a demo model, trained on synthetic toy images: it detects nothing real")
    calibration_source: str | None = Field(
        description="the file the temperature, operating points and band were read from; null when the run "
        "has not been evaluated"
    )
    dataset: dict[str, Any] = Field(description="source, key and counts of the training data")
    metrics: Any = Field(description="validation and test metrics from training")


class MetadataSection(Closed):
    """TensorFlow Serving's signatures, plus this server's ``aiclassify`` section."""

    signature_def: dict[str, Any] = Field(description="TensorFlow Serving's SignatureDefMap as JSON")
    aiclassify: ModelDescription


class ModelMetadata(Closed):
    """TensorFlow Serving's GetModelMetadata answer."""

    model_spec: ModelSpec
    metadata: MetadataSection


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""
