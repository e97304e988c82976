"""The page's side of faces in a picture: whether the API can score faces (``GET /v1/faces``), and
each image drawn with a box round every face it found, coloured by the face's verdict.

With ``model=auto`` the API scores the whole image with its general model and every face it finds
with its face model (docs/api.md); the page offers ``auto`` only when ``GET /v1/faces`` says it is
available. Boxes are in the pixels of the image as the API saw it, after its EXIF orientation was
applied, so they are drawn on the upload turned the same way (:func:`annotated_jpeg`). Nothing here
imports Streamlit or TensorFlow.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from aiclassify.page.client import ApiCallError, ApiClient
from aiclassify.page.results import INCONCLUSIVE, FaceResult

FACES_PATH = "/v1/faces"
AUTO_MODEL = "auto"
AUTO_LABEL = "auto: faces + whole image"
VERDICT_RGB = {
    "AI-generated": (220, 38, 38),
    "Real": (22, 163, 74),
    INCONCLUSIVE: (120, 120, 120),
}
"""Box colours, as the page colours verdicts: red, green, grey."""
UNKNOWN_RGB = (37, 99, 235)
SHORT_VERDICT = {"AI-generated": "AI", "Real": "Real", INCONCLUSIVE: "Inconclusive"}
DISPLAY_MIN_SIDE = 512
"""An image whose longer side is under this is enlarged to it before boxes are drawn, so that labels
are readable on a small image."""
DISPLAY_MAX_SIDE = 1600
"""An image whose longer side is over this is shrunk to it: the page shows it far smaller anyway."""


@dataclass
class FacesInfo:
    """What ``GET /v1/faces`` says: whether ``model=auto`` can be used, the models it uses and the
    detector's state and settings; ``note`` says why it cannot be used, when it cannot."""

    available: bool = False
    face_model: str | None = None
    general_model: str | None = None
    detector: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def detector_state(self) -> str | None:
        """The detector's state (``LOADING``, ``AVAILABLE``, ``END`` or ``DISABLED``), when told."""
        state = self.detector.get("state")
        return str(state) if state else None


def faces_info(client: ApiClient) -> FacesInfo:
    """``GET /v1/faces`` of ``client``'s API. An API without the endpoint (404, an older server) or
    one that answers an error is reported as unavailable, with the reason in ``note``."""
    try:
        body = client.faces()
    except ApiCallError as error:
        if error.status == 404:
            return FacesInfo(note="this API does not score faces (it has no /v1/faces)")
        return FacesInfo(note=error.message)
    detector = body.get("detector") if isinstance(body.get("detector"), dict) else {}
    note = body.get("note")
    return FacesInfo(
        available=body.get("available") is True,
        face_model=body.get("face_model") if isinstance(body.get("face_model"), str) else None,
        general_model=body.get("general_model") if isinstance(body.get("general_model"), str) else None,
        detector=detector,
        note=str(note) if note else None,
    )


def model_label(name: str) -> str:
    """How a model choice is shown in the sidebar: ``auto`` spelled out, any other name as it is."""
    return AUTO_LABEL if name == AUTO_MODEL else name


def face_label(face: FaceResult) -> str:
    """The text beside a face's box: its number, short verdict and P(AI-generated), e.g. ``1 AI 0.93``."""
    verdict = SHORT_VERDICT.get(face.verdict or "", face.verdict or "?")
    probability = "" if face.probability_ai is None else f" {face.probability_ai:.2f}"
    return f"{face.number} {verdict}{probability}"


def display_scale(width: int, height: int) -> float:
    """The factor by which :func:`draw_faces` resizes a ``width`` x ``height`` image: its longer side
    is brought within :data:`DISPLAY_MIN_SIDE` and :data:`DISPLAY_MAX_SIDE`."""
    longer = max(width, height)
    if longer < DISPLAY_MIN_SIDE:
        return DISPLAY_MIN_SIDE / longer
    if longer > DISPLAY_MAX_SIDE:
        return DISPLAY_MAX_SIDE / longer
    return 1.0


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's own scalable font at ``size`` pixels (its small bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError, TypeError, AttributeError):  # Pillow built without FreeType
        return ImageFont.load_default()


def draw_faces(image: Image.Image, faces: Sequence[FaceResult]) -> Image.Image:
    """A copy of ``image`` (RGB, resized by :func:`display_scale`) with a box round each face and a
    label (:func:`face_label`) on a band of the box's colour above it (inside, at the top edge).

    Boxes are ``(x, y, width, height)`` in ``image``'s pixels; the colour is the face's verdict's
    (:data:`VERDICT_RGB`). Line width and font grow with the image, so that boxes and labels are
    visible on a small image and a large one alike. Faces without a box are skipped.
    """
    scale = display_scale(*image.size)
    shown = image.convert("RGB")
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        shown = shown.resize(size, Image.Resampling.LANCZOS)
    longer = max(shown.size)
    line = max(2, round(longer / 200))  # 3 px at 512, 8 px at 1600: about 2 px as the page shows it
    font = _font(max(14, round(longer / 28)))
    draw = ImageDraw.Draw(shown)
    for face in faces:
        if face.box is None:
            continue
        colour = VERDICT_RGB.get(face.verdict or "", UNKNOWN_RGB)
        x, y, width, height = face.box
        left, top = round(x * scale), round(y * scale)
        right = min(shown.width, round((x + width) * scale)) - 1
        bottom = min(shown.height, round((y + height) * scale)) - 1
        if right < left or bottom < top:
            continue
        draw.rectangle((left, top, right, bottom), outline=colour, width=line)
        text = face_label(face)
        text_left, text_top, text_right, text_bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, line)
        band_width = text_right - text_left + 2 * pad
        band_height = text_bottom - text_top + 2 * pad
        band_left = max(0, min(left, shown.width - band_width))
        band_top = top - band_height if top - band_height >= 0 else top
        draw.rectangle(
            (band_left, band_top, band_left + band_width - 1, band_top + band_height - 1), fill=colour
        )
        draw.text((band_left + pad - text_left, band_top + pad - text_top), text, fill="white", font=font)
    return shown


def upright(content: bytes) -> Image.Image:
    """The uploaded image turned by its EXIF orientation, as the API sees it (first frame)."""
    with Image.open(io.BytesIO(content)) as image:
        image.load()
        return ImageOps.exif_transpose(image)


def annotated_jpeg(content: bytes, faces: Sequence[FaceResult]) -> bytes:
    """The uploaded image (turned upright by its EXIF orientation) with its faces drawn
    (:func:`draw_faces`), as JPEG bytes (quality 90, no chroma subsampling, so the boxes stay sharp)."""
    buffer = io.BytesIO()
    draw_faces(upright(content), faces).save(buffer, "JPEG", quality=90, subsampling=0)
    return buffer.getvalue()
