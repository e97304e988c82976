"""Streamlit upload page: classify images as AI-generated or real through the aiclassify API.

Run with ``make app`` (API + page on the demo models) or
``AICLASSIFY_API_URL=http://127.0.0.1:8000 streamlit run app/streamlit_app.py``. The page never
imports TensorFlow: it only talks HTTP to the API (docs/api.md). Logic lives in the installed
package's ``aiclassify.page``: ``client`` (API calls), ``results`` (scoring a batch, table,
CSV/JSON), ``faces`` (``GET /v1/faces`` and the image with a box round each face) and ``about``.
When the API can score faces, the model choice offers ``auto`` (the default): the whole image is
scored by the general model and every face found in it by the face model.
"""

from __future__ import annotations

import inspect

import streamlit as st

from aiclassify.page import about, results
from aiclassify.page import faces as page_faces
from aiclassify.page.client import (
    STRICT_OPERATING_POINT,
    ApiCallError,
    ApiClient,
    ModelInfo,
    api_url_from_env,
)

DEFAULT_POINT = "Default threshold"
STRICT_POINT = "Strict: 1% false positives"
MAX_PREVIEWS = 50


def sidebar() -> tuple[
    ApiClient, list[ModelInfo], ApiCallError | None, str | None, str | None, page_faces.FacesInfo
]:
    """API address, model and operating point choices; the client, models, error, model, point and
    what the API says about scoring faces. ``auto`` is offered first, so chosen by default, when the
    API can score faces (``GET /v1/faces``)."""
    st.sidebar.header("Settings")
    url = st.sidebar.text_input(
        "API URL",
        value=api_url_from_env(),
        key="api_url",
        help="Set AICLASSIFY_API_URL to change the default.",
    )
    client = ApiClient(url)
    try:
        models = client.models_with_metadata()
        error = None
    except ApiCallError as exc:
        models, error = [], exc
    faces = page_faces.faces_info(client) if error is None else page_faces.FacesInfo()
    available = [m for m in models if m.available]
    for model in models:
        if not model.available:
            st.sidebar.warning(
                f"Model **{model.name}** is {model.state.lower()}"
                + (f": {model.error}" if model.error else "")
                + "."
            )
    if not available:
        st.sidebar.selectbox("Model", ["(no model available)"], disabled=True, key="model_none")
        st.sidebar.radio("Operating point", [DEFAULT_POINT], disabled=True, key="point_none")
        return client, models, error, None, None, faces
    names = [m.name for m in available]
    auto = faces.available and {faces.face_model, faces.general_model} <= set(names)
    chosen = st.sidebar.selectbox(
        "Model",
        [page_faces.AUTO_MODEL, *names] if auto else names,
        format_func=page_faces.model_label,
        key="model",
        help=(
            f"{page_faces.AUTO_LABEL}: the whole image is scored by the general model "
            f"({faces.general_model}) and every face found in it by the face model ({faces.face_model}). "
            "Or one model the API serves, on the whole image."
            if auto
            else "Each model the API serves."
        ),
    )
    if not auto and faces.note and faces.detector_state:
        st.sidebar.caption(f"Faces are not scored one by one: {faces.note}")
    used = [faces.face_model, faces.general_model] if chosen == page_faces.AUTO_MODEL else [chosen]
    strict_ok = all(m.has_strict_point for m in available if m.name in used)
    point = st.sidebar.radio(
        "Operating point",
        [DEFAULT_POINT, STRICT_POINT] if strict_ok else [DEFAULT_POINT],
        key="point",
        help=(
            "Strict uses the threshold at which about 1% of real images are called AI-generated "
            "(measured on the model's validation data)."
            if strict_ok
            else "This model has no stored 1% false-positive operating point, only its default threshold."
        ),
    )
    return client, models, error, chosen, STRICT_OPERATING_POINT if point == STRICT_POINT else None, faces


VERDICT_COLOURS = {"AI-generated": "red", "Real": "green", results.INCONCLUSIVE: "gray"}


def whole_image_by(model: str | None, faces: page_faces.FacesInfo) -> str:
    """What scored the whole image, said above its verdict when faces are scored too."""
    if model == page_faces.AUTO_MODEL:
        return "Whole image, scored by the general model"
    if model is not None and model == faces.face_model:
        return "Whole image, scored by the face model"
    return "Whole image, scored by the model"


def show_verdict(
    row: results.ResultRow,
    content: bytes,
    model: str | None = None,
    faces_image: bytes | None = None,
    faces: page_faces.FacesInfo | None = None,
) -> None:
    """One image (and its Grad-CAM overlay, when there is one) beside its verdict, probability bar
    and the warnings that make the verdict unreliable; then, when the API searched it for faces,
    each face found (:func:`show_faces`). ``model`` is the model asked for (``auto`` or a name),
    ``faces_image`` the image with its faces drawn, ``faces`` what the API said about faces."""
    if row.overlay_png:
        left, middle, right = st.columns([1, 1, 2])
    else:
        (left, right), middle = st.columns([1, 3]), None
    if row.ok:
        try:
            left.image(content, width=160)
        except Exception:  # a preview is a nicety; the verdict still shows
            left.caption("(no preview)")
    if middle is not None:
        middle.image(row.overlay_png, width=160, caption="Grad-CAM: red raises P(AI-generated)")
    with right:
        st.markdown(f"**{row.file}**")
        if not row.ok:
            st.error(f"{row.file}: {row.error}")
            return
        if row.faces is not None or model == page_faces.AUTO_MODEL:
            by = whole_image_by(model, faces or page_faces.FacesInfo())
            st.markdown(f"{by} **{results.markdown_escape(str(row.model))}**:")
        st.markdown(f"### :{VERDICT_COLOURS.get(row.verdict, 'gray')}[{row.verdict}]")
        if row.inconclusive:
            st.markdown(
                f"**{results.INCONCLUSIVE_TEXT}.** Its score lies between the levels at which it was "
                "reliable when tested: treat this image as unclassified, not as real or fake."
            )
        st.progress(
            min(max(float(row.probability_ai), 0.0), 1.0),
            text=f"Probability AI-generated: {row.probability_ai:.1%}",
        )
        if row.warnings:
            st.warning(
                "**This verdict is less reliable:**\n"
                + "\n".join(f"- {warning.get('message')}" for warning in row.warnings)
            )
        point = "default" if row.operating_point in (None, "default") else row.operating_point
        band = (
            f" · real up to {row.band_lower:.3f}, AI-generated from {row.band_upper:.3f}"
            if row.band_lower is not None and row.band_upper is not None
            else " · no inconclusive band (model not evaluated)"
        )
        st.caption(
            f"Model {row.model} (version {row.model_version}) · threshold {row.threshold:.3f} "
            f"({point}): {row.label}{band} · {row.size} {row.format or ''}"
        )
        if row.overlay_note:
            st.caption(f"No Grad-CAM overlay: {row.overlay_note}")
        show_evidence(row)
    if row.faces is not None:
        show_faces(row, faces_image)
    elif model == page_faces.AUTO_MODEL:
        st.markdown(
            "**Faces:** not searched in this image (see the warning above): only the whole-image "
            "verdict is shown."
        )


def fit_width() -> dict:
    """The ``st.image`` argument that fits an image to its column, in this Streamlit's words
    (``width="stretch"`` from 1.46; ``use_container_width`` or ``use_column_width`` before)."""
    parameters = inspect.signature(st.image).parameters
    if isinstance(parameters["width"].default, str):
        return {"width": "stretch"}
    return (
        {"use_container_width": True} if "use_container_width" in parameters else {"use_column_width": True}
    )


def common_warnings(faces: list[results.FaceResult]) -> list[dict[str, str]]:
    """The warnings every face has (said once for all of them, not on each face's line)."""
    shared = [w for w in faces[0].warnings if all(w in face.warnings for face in faces[1:])]
    return shared if len(faces) > 1 else []


def face_lines(face: results.FaceResult, skip: list[dict[str, str]] | None = None) -> list[str]:
    """One face's line (number, verdict, P(AI-generated), detector confidence, box), then one
    indented line per warning about it (but those of ``skip``), as Markdown."""
    colour = VERDICT_COLOURS.get(face.verdict, "gray")
    probability = "n/a" if face.probability_ai is None else f"{face.probability_ai:.1%}"
    confidence = "n/a" if face.detector_confidence is None else f"{face.detector_confidence:.3f}"
    lines = [
        f"- **Face {face.number}**: :{colour}[{face.verdict}] · P(AI-generated) {probability} · "
        f"detector confidence {confidence} · box {face.box_text or 'n/a'}"
    ]
    if face.inconclusive:
        lines.append(f"    - {results.INCONCLUSIVE_TEXT}: treat this face as unclassified.")
    lines.extend(
        f"    - {results.markdown_escape(str(w.get('message')))}"
        for w in face.warnings
        if w not in (skip or [])
    )
    return lines


def show_faces(row: results.ResultRow, faces_image: bytes | None) -> None:
    """The faces the API found in the image: the image with a box round each, coloured by the face
    model's verdict, and one line per face. Each face's score is its own line, apart from the
    whole-image verdict above."""
    if not row.faces:
        st.markdown(f"**Faces:** no face found in {results.markdown_escape(row.file)}.")
        return
    picture, listing = st.columns([3, 2])
    if faces_image is not None:
        picture.image(
            faces_image,
            caption="Each box: face number, verdict, P(AI-generated). "
            "Red AI-generated, green Real, grey Inconclusive.",
            **fit_width(),
        )
    else:
        picture.caption("(no picture of the faces: the page could not read this image)")
    first = row.faces[0]
    with listing:
        st.markdown(
            f"**Faces: {len(row.faces)} found**, each scored on its own by the face model "
            f"**{results.markdown_escape(str(first.model))}** (a signal, not proof):"
        )
        shared = common_warnings(row.faces)
        st.markdown("\n".join(line for face in row.faces for line in face_lines(face, shared)))
        if shared:
            st.warning(
                "**Every face's verdict is less reliable:**\n"
                + "\n".join(f"- {results.markdown_escape(str(w.get('message')))}" for w in shared)
            )
        point = "default" if first.operating_point in (None, "default") else first.operating_point
        threshold = "n/a" if first.threshold is None else f"{first.threshold:.3f}"
        st.caption(
            f"Face model {first.model} (version {first.model_version}) · threshold {threshold} ({point}) · "
            "boxes in pixels of the image as the API read it (after its EXIF orientation)"
        )


def show_evidence(row: results.ResultRow) -> None:
    """The "Evidence" section: what the image's metadata declares, one line per finding, in plain
    words. It is shown beside the model's verdict and never changes it."""
    lines = results.evidence_lines(row.evidence)
    with st.expander("Evidence (metadata, not part of the verdict)", expanded=row.evidence is not None):
        st.markdown(f"**{lines[0]}**")
        # metadata text (prompts, tool names) is shown as text: escaped, never rendered as Markdown
        st.markdown("\n".join(f"- {results.markdown_escape(line)}" for line in lines[1:]))
        st.caption(
            "Metadata is read from the file as uploaded and reported separately: the model's score "
            "comes from the pixels alone."
        )


def score(client: ApiClient, uploads: list, model: str, point: str | None, explain: bool = False) -> dict:
    """Score the uploads (with a progress bar) unless the same files were scored with these settings."""
    key = (client.base_url, model, point, explain, tuple((f.file_id, f.name, f.size) for f in uploads))
    cached = st.session_state.get("scored")
    if cached and cached["key"] == key:
        return cached
    files = [(f.name, f.getvalue()) for f in uploads]
    bar = st.progress(0.0, text=f"Scoring {len(files)} image(s)…")

    def progress(done: int, total: int, name: str) -> None:
        """Move the bar after each scored file."""
        bar.progress(done / total, text=f"Scored {done} of {total}: {name}")

    rows, fatal = results.score_files(
        client, files, model=model, operating_point=point, progress=progress, explain=explain
    )
    bar.empty()
    # a batch cut short by an unreachable API is scored again on the next run of the page
    scored = {
        "key": key if fatal is None else None,
        "model": model,
        "rows": rows,
        "contents": [content for _, content in files],
        "faces_images": [
            faces_image(row, content) if number < MAX_PREVIEWS else None
            for number, (row, (_, content)) in enumerate(zip(rows, files, strict=True))
        ],
        "fatal": fatal,
    }
    st.session_state["scored"] = scored
    return scored


def faces_image(row: results.ResultRow, content: bytes) -> bytes | None:
    """The image with its faces' boxes drawn (JPEG), when faces were found; None otherwise or when
    the page cannot read the image."""
    if not row.ok or not row.faces:
        return None
    try:
        return page_faces.annotated_jpeg(content, row.faces)
    except Exception:  # a picture is a nicety; the faces are still listed
        return None


def show_results(scored: dict, faces: page_faces.FacesInfo | None = None) -> None:
    """Summary, each image with its verdict (and its faces), the results table and download buttons."""
    rows: list[results.ResultRow] = scored["rows"]
    if scored["fatal"] is not None:
        st.error(f"Scoring stopped: {scored['fatal'].message}")
    counts = results.summary(rows)
    columns = st.columns(len(counts))
    for column, (label, count) in zip(columns, counts.items(), strict=True):
        column.metric(label, count)
    faces_images = scored.get("faces_images") or [None] * len(rows)
    shown = zip(rows, scored["contents"], faces_images, strict=True)
    for row, content, faces_image in list(shown)[:MAX_PREVIEWS]:
        show_verdict(row, content, scored.get("model"), faces_image, faces)
    if len(rows) > MAX_PREVIEWS:
        st.info(f"Showing the first {MAX_PREVIEWS} images; the table lists all {len(rows)}.")
    st.subheader("Results")
    st.dataframe(results.display_records(rows), hide_index=True)
    csv_column, json_column = st.columns(2)
    csv_column.download_button(
        "Download CSV",
        results.to_csv(rows),
        file_name="aiclassify-results.csv",
        mime="text/csv",
        key="download_csv",
    )
    json_column.download_button(
        "Download JSON",
        results.to_json(rows),
        file_name="aiclassify-results.json",
        mime="application/json",
        key="download_json",
    )


def about_panel(models: list[ModelInfo]) -> None:
    """What the models were trained on, how accurate they measured, and their limits."""
    with st.expander("About the models and their limits"):
        for model in models:
            if model.details:
                st.markdown(
                    "\n".join(
                        f"- **{label}:** {text}"
                        for label, text in about.model_summary(model.name, model.details)
                    )
                )
        if not any(m.details for m in models):
            st.write("No model information: the API is not reachable or has no model loaded.")
        st.markdown("**Limits**")
        for text in about.LIMITS:
            st.markdown(f"- {text}")


def main() -> None:
    """Render the page."""
    st.set_page_config(page_title="aiclassify: AI-generated or real?", layout="wide")
    st.title("AI-generated or real?")
    st.caption("Upload one image or many; each is classified by the aiclassify API.")
    client, models, error, model, point, faces = sidebar()
    used = [faces.face_model, faces.general_model] if model == page_faces.AUTO_MODEL else [model]
    if any(m.is_demo for m in models if m.name in used):
        st.warning(f"**{about.DEMO_BANNER}.**", icon="⚠️")
    explain = st.sidebar.checkbox(
        "Show Grad-CAM overlay",
        key="explain",
        help="Ask the API for a heatmap of where the model sees evidence of AI generation (slower).",
    )
    if error is not None:
        st.error(error.message)
        st.button("Retry", key="retry")
    elif model is None:
        st.warning("No model is available yet (still loading?). Retry in a moment.")
        st.button("Retry", key="retry")
    uploads = st.file_uploader(
        "Images (jpg, jpeg, png, webp, bmp)",
        type=list(results.SUPPORTED_TYPES),
        accept_multiple_files=True,
        key="uploads",
    )
    if uploads and model is not None:
        show_results(score(client, list(uploads), model, point, explain), faces)
    elif uploads:
        st.info("The images will be classified once the API is reachable and a model is available.")
    about_panel(models)


if __name__ == "__main__":
    main()
