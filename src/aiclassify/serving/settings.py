"""Server settings: one frozen dataclass, read from the environment and optional overrides.

Every setting has an ``AICLASSIFY_*`` environment variable; ``create_app(config=...)`` takes a
:class:`ServerSettings` or a mapping of field names that overrides the environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MODELS = "faces=runs/demo,general=runs/demo-general"


class SettingsError(ValueError):
    """A setting has a value the server cannot use."""


@dataclass(frozen=True)
class ServerSettings:
    """What the server loads and the limits it enforces."""

    models: tuple[tuple[str, str], ...] = ()  # (name, run directory or SavedModel path)
    default_model: str = ""  # empty: the first configured model
    max_upload_mb: float = 16.0  # whole request body (MAX_CONTENT_LENGTH)
    max_images: int = 32  # images in one request
    max_image_pixels: int = 40_000_000  # width * height, checked from the header before decoding
    max_image_side: int = 16_384  # pixels, either side
    api_key: str = ""  # empty: no key required
    max_batch_size: int = 32
    max_batch_wait_ms: float = 5.0
    request_timeout_s: float = 30.0
    background_loading: bool = True  # load models in a thread so /healthz answers at once

    @property
    def max_content_length(self) -> int:
        """The request body limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def model_names(self) -> tuple[str, ...]:
        """Configured model names in order."""
        return tuple(name for name, _ in self.models)


ENV_NAMES = {field.name: f"AICLASSIFY_{field.name.upper()}" for field in dataclasses.fields(ServerSettings)}


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
    for name in ("max_upload_mb", "max_images", "max_image_pixels", "max_image_side", "max_batch_size"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")
    if settings.default_model and settings.models and settings.default_model not in settings.model_names:
        raise SettingsError(
            f"default model {settings.default_model!r} is not one of {list(settings.model_names)}"
        )
    if not settings.default_model and settings.models:
        settings = dataclasses.replace(settings, default_model=settings.models[0][0])
    return settings
