"""Server settings: one frozen dataclass, read from the environment and optional overrides.

Every setting has an ``AICLASSIFY_*`` environment variable; ``create_app(config=...)`` takes a
:class:`ServerSettings` or a mapping of field names that overrides the environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_MODELS = "faces=runs/demo,general=runs/demo-general"
SHIPPED_MODEL_NAMES = ("faces", "general")
MIN_FORM_FIELD_KB = 128.0  # Werkzeug's multipart parser holds up to 64 KB of a part at a time


class SettingsError(ValueError):
    """A setting has a value the server cannot use."""


@dataclass(frozen=True)
class ServerSettings:
    """What the server loads and the limits it enforces."""

    models: tuple[tuple[str, str], ...] = ()  # (name, run directory or SavedModel path)
    default_model: str = ""  # empty: the first configured model
    max_upload_mb: float = 16.0  # whole request body (MAX_CONTENT_LENGTH), with or without Content-Length
    max_form_field_kb: float = 256.0  # one non-file multipart field (MAX_FORM_MEMORY_SIZE), >= 128
    max_form_parts: int = 64  # parts of one multipart body (MAX_FORM_PARTS), more than max_images
    max_url_bytes: int = 4096  # request target (path and query) as sent; the app answers 414 above it
    max_header_bytes: int = 4096  # one header field, name and value; the app answers 431 above it
    socket_timeout_s: float = 10.0  # gunicorn: longest silence of a client while reading or writing
    max_images: int = 32  # images in one request
    max_image_pixels: int = 40_000_000  # width * height, checked from the header before decoding
    max_image_side: int = 16_384  # pixels, either side
    max_jpeg_scans: int = 100  # scans of one JPEG, counted before decoding (progressive: about 10)
    max_request_pixels: int = 200_000_000  # width * height summed over a request, from the headers
    decode_budget_s: float = 10.0  # CPU seconds a request may spend decoding and preparing its images
    api_key: str = ""  # empty: no key required
    max_batch_size: int = 32
    max_batch_wait_ms: float = 5.0
    request_timeout_s: float = 30.0
    max_explanation_side: int = 1024  # pixels: explain=true overlays are scaled down to this a side
    max_concurrent_explanations: int = 2  # requests explaining at once (each holds a decoded image)
    explanation_wait_s: float = 10.0  # a request over that limit waits this long for a turn, then 503
    background_loading: bool = True  # load models in a thread so /healthz answers at once
    face_model: str = "faces"  # the served model that scores each face found (model=auto, model=faces)
    general_model: str = "general"  # the served model that scores the whole image under model=auto
    face_detection: bool = True  # load the face detector at start-up when the face model is served
    max_faces: int = 20  # faces scored per image: the most confident, reported left to right
    min_face_size: int = 32  # pixels: faces whose box's longer side is smaller are not scored
    min_face_confidence: float = 0.9  # detector confidence (0-1) below which a face is not scored
    max_face_search_side: int = 1024  # pixels: larger images are searched on a copy shrunk to this
    max_concurrent_face_searches: int = 2  # face searches at once (CPU-bound; each holds a decoded image)
    face_search_wait_s: float = 20.0  # an image over that limit waits this long, then is not searched

    @property
    def max_content_length(self) -> int:
        """The request body limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_form_memory_size(self) -> int:
        """The limit on one non-file multipart field in bytes."""
        return int(self.max_form_field_kb * 1024)

    @property
    def model_names(self) -> tuple[str, ...]:
        """Configured model names in order."""
        return tuple(name for name, _ in self.models)


ENV_NAMES = {field.name: f"AICLASSIFY_{field.name.upper()}" for field in dataclasses.fields(ServerSettings)}


def default_models(root: Path = Path(".")) -> tuple[tuple[str, str], ...]:
    """What the server loads when ``AICLASSIFY_MODELS`` is unset, as ``make serve`` does: the shipped
    models under ``root/models/`` (each folder with a ``MANIFEST.json``), or the demo runs of
    ``make demo`` when none is shipped."""
    present = [name for name in SHIPPED_MODEL_NAMES if (root / "models" / name / "MANIFEST.json").is_file()]
    shipped = tuple((name, f"models/{name}") for name in present)
    return shipped or parse_models(DEMO_MODELS)


def parse_models(text: str) -> tuple[tuple[str, str], ...]:
    """``"faces=runs/demo,general=runs/demo-general"`` as ``(("faces", "runs/demo"), ...)``."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, separator, path = item.partition("=")
        if not separator or not name.strip() or not path.strip():
            raise SettingsError(f"AICLASSIFY_MODELS entry {item!r} is not name=path")
        pairs.append((name.strip(), path.strip()))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise SettingsError(f"AICLASSIFY_MODELS names a model twice: {text!r}")
    return tuple(pairs)


def _convert(name: str, value: Any) -> Any:
    """``value`` (often a string from the environment) as the type of field ``name``."""
    default = getattr(ServerSettings, name) if name != "models" else ()
    if name == "models":
        if isinstance(value, str):
            return parse_models(value)
        items = value.items() if isinstance(value, Mapping) else value
        return tuple((str(n), str(p)) for n, p in items)
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        return type(default)(value)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"setting {name} = {value!r}: {error}") from error


def load_settings(
    overrides: ServerSettings | Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """Settings from ``environ`` (default ``os.environ``), then ``overrides`` on top."""
    if isinstance(overrides, ServerSettings):
        return validate(overrides)
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, env_name in ENV_NAMES.items():
        if env_name in environ:
            values[name] = _convert(name, environ[env_name])
    unknown = set(overrides or {}) - set(ENV_NAMES)
    if unknown:
        raise SettingsError(f"unknown server settings: {sorted(unknown)}")
    for name, value in (overrides or {}).items():
        values[name] = _convert(name, value)
    return validate(ServerSettings(**values))


def validate(settings: ServerSettings) -> ServerSettings:
    """Check limits and the default model; fill in the default model when empty."""
    for name in ("max_explanation_side", "max_concurrent_explanations"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if settings.explanation_wait_s < 0:
        raise SettingsError("explanation_wait_s must not be negative")
    for name in ("max_upload_mb", "max_images", "max_image_pixels", "max_image_side", "max_batch_size"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    for name in ("max_form_parts", "max_url_bytes", "max_header_bytes", "socket_timeout_s"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if settings.max_form_field_kb < MIN_FORM_FIELD_KB:
        raise SettingsError(
            f"max_form_field_kb must be at least {MIN_FORM_FIELD_KB:g}: the multipart parser buffers "
            "64 KB of file data at a time under this limit too"
        )
    for name in ("max_jpeg_scans", "decode_budget_s"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if settings.max_request_pixels < settings.max_image_pixels:
        raise SettingsError("max_request_pixels must be at least max_image_pixels (one largest image)")
    if settings.max_form_parts <= settings.max_images:
        raise SettingsError("max_form_parts must be larger than max_images (a part per image, and fields)")
    if settings.face_search_wait_s < 0:
        raise SettingsError("face_search_wait_s must not be negative")
    for name in ("max_faces", "min_face_size", "max_face_search_side", "max_concurrent_face_searches"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if not 0 <= settings.min_face_confidence <= 1:
        raise SettingsError("min_face_confidence must be between 0 and 1")
    if settings.face_model == settings.general_model:
        raise SettingsError("face_model and general_model must name different models")
    if settings.default_model and settings.models and settings.default_model not in settings.model_names:
        raise SettingsError(
            f"default model {settings.default_model!r} is not one of {list(settings.model_names)}"
        )
    if not settings.default_model and settings.models:
        settings = dataclasses.replace(settings, default_model=settings.models[0][0])
    return settings
