"""A small HTTP client for the aiclassify inference API (docs/api.md), without TensorFlow.

Every failure is raised as :class:`ApiCallError` with a message a person can act on: the API is not
running, it did not answer in time, or it answered an error (``{"error": "..."}``).
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass, field
from typing import Any

import requests

DEFAULT_API_URL = "http://127.0.0.1:8000"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0
STRICT_OPERATING_POINT = "fpr_1pct"


class ApiCallError(Exception):
    """The API could not be used; ``kind`` is ``unreachable``, ``timeout``, ``http`` or ``invalid``."""

    def __init__(self, message: str, kind: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status

    @property
    def about_the_image(self) -> bool:
        """Whether the API rejected the image itself (unreadable, unsupported, too big)."""
        return self.kind == "http" and self.status in (400, 413, 415, 422)

    @property
    def api_unusable(self) -> bool:
        """Whether further requests are pointless right now (API down, or it stopped answering)."""
        return self.kind in ("unreachable", "timeout")


def api_url_from_env(environ: dict[str, str] | None = None) -> str:
    """The API base URL from ``AICLASSIFY_API_URL`` (default http://127.0.0.1:8000), without a trailing /."""
    environ = os.environ if environ is None else environ
    return (environ.get("AICLASSIFY_API_URL") or DEFAULT_API_URL).strip().rstrip("/")


def timeout_from_env(environ: dict[str, str] | None = None) -> float:
    """Seconds to wait for an answer: ``AICLASSIFY_API_TIMEOUT_S`` (default 60)."""
    environ = os.environ if environ is None else environ
    try:
        value = float(environ.get("AICLASSIFY_API_TIMEOUT_S") or READ_TIMEOUT_S)
    except ValueError:
        return READ_TIMEOUT_S
    return value if value > 0 else READ_TIMEOUT_S


@dataclass
class ModelInfo:
    """A served model as the API describes it (``/readyz`` and ``/v1/models/<name>/metadata``)."""

    name: str
    state: str = "UNKNOWN"
    version: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """Whether the model is loaded and can score images."""
        return self.state == "AVAILABLE"

    @property
    def operating_points(self) -> list[str]:
        """Names of the model's stored operating points (e.g. ``fpr_1pct``)."""
        return [p.get("name") for p in self.details.get("operating_points") or [] if p.get("name")]

    @property
    def is_demo(self) -> bool:
        """Whether the API says this is a demo model (trained on synthetic toy images)."""
        return self.details.get("demo") is True

    @property
    def has_strict_point(self) -> bool:
        """Whether the model offers the 1 % false-positive operating point."""
        return STRICT_OPERATING_POINT in self.operating_points


class ApiClient:
    """Calls the API at ``base_url`` with bounded timeouts; optional ``X-API-Key``.

    ``timeout_s`` defaults to ``AICLASSIFY_API_TIMEOUT_S`` (60 s); the key to ``AICLASSIFY_API_KEY``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        timeout_s: float | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        api_key: str | None = None,
    ):
        self.base_url = (base_url or api_url_from_env()).rstrip("/")
        self.timeout = (connect_timeout_s, timeout_s if timeout_s is not None else timeout_from_env())
        self.session = requests.Session()
        key = api_key if api_key is not None else os.environ.get("AICLASSIFY_API_KEY")
        if key:
            self.session.headers["X-API-Key"] = key

    def _request(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """Send one request and return its JSON body; every failure becomes an :class:`ApiCallError`."""
        url = f"{self.base_url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise ApiCallError(
                f"The API at {self.base_url} did not answer within {self.timeout[1]:g} s "
                "(it may be overloaded or still starting).",
                "timeout",
            ) from None
        except requests.ConnectionError:
            raise ApiCallError(
                f"Cannot reach the API at {self.base_url}: is it running? "
                "Start it with `make serve` (or `make app`).",
                "unreachable",
            ) from None
        except requests.RequestException as error:
            raise ApiCallError(f"Request to {url} failed: {error}", "unreachable") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code not in ok:
            detail = body.get("error") if isinstance(body, dict) else None
            detail = detail or (response.text[:200].strip() or response.reason)
            raise ApiCallError(
                f"The API answered {response.status_code}: {detail}", "http", response.status_code
            )
        if not isinstance(body, dict):
            raise ApiCallError(
                f"The API at {url} did not answer JSON (is AICLASSIFY_API_URL right?).", "invalid"
            )
        return body

    def models(self) -> list[ModelInfo]:
        """The served models and their states, from ``GET /readyz`` (which answers 503 while loading)."""
        body = self._request("GET", "/readyz", ok=(200, 503))
        models = body.get("models")
        if not isinstance(models, dict):
            raise ApiCallError(f"{self.base_url}/readyz did not list any models.", "invalid")
        return [
            ModelInfo(
                name=name,
                state=str(info.get("state") or "UNKNOWN"),
                version=info.get("version"),
                error=info.get("error"),
            )
            for name, info in models.items()
            if isinstance(info, dict)
        ]

    def faces(self) -> dict[str, Any]:
        """``GET /v1/faces``: whether ``model=auto`` can be used, its models and the face detector."""
        return self._request("GET", "/v1/faces")

    def metadata(self, name: str) -> dict[str, Any]:
        """What the API says about model ``name`` (``metadata.aiclassify`` of its metadata endpoint)."""
        body = self._request("GET", f"/v1/models/{requests.utils.quote(name, safe='')}/metadata")
        details = (body.get("metadata") or {}).get("aiclassify")
        return details if isinstance(details, dict) else {}

    def models_with_metadata(self) -> list[ModelInfo]:
        """:meth:`models`, each with its metadata when it is available (failures leave it empty)."""
        models = self.models()
        for model in models:
            if model.available:
                try:
                    model.details = self.metadata(model.name)
                except ApiCallError:
                    model.details = {}
        return models

    def predict(
        self,
        files: list[tuple[str, bytes]],
        model: str | None = None,
        operating_point: str | None = None,
        explain: bool = False,
    ) -> dict[str, Any]:
        """``POST /predict`` with ``files`` as (file name, content) pairs; the API's JSON answer.

        ``explain`` asks for a Grad-CAM overlay with each prediction (``explanation``).
        """
        params = {
            key: value
            for key, value in (
                ("model", model),
                ("operating_point", operating_point),
                ("explain", "true" if explain else None),
            )
            if value
        }
        multipart = [
            ("file", (name, content, mimetypes.guess_type(name)[0] or "application/octet-stream"))
            for name, content in files
        ]
        return self._request("POST", "/predict", params=params, files=multipart)
