"""Streamlit upload page: classify images as AI-generated or real through the aiclassify API.

Run with ``make app`` (API + page on the demo models) or
``AICLASSIFY_API_URL=http://127.0.0.1:8000 streamlit run app/streamlit_app.py``. The page never
imports TensorFlow: it only talks HTTP to the API (docs/api.md). Logic lives in the installed
package's ``aiclassify.page``: ``client`` (API calls), ``results`` (scoring a batch, table,
CSV/JSON) and ``about``.
"""

from __future__ import annotations

import streamlit as st

from aiclassify.page import about, results
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


def sidebar() -> tuple[ApiClient, list[ModelInfo], ApiCallError | None, str | None, str | None]:
    """API address, model and operating point choices; the client, models, error, model, point."""
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
        return client, models, error, None, None
    chosen = st.sidebar.selectbox(
        "Model", [m.name for m in available], key="model", help="Each model the API serves."
    )
    model = next(m for m in available if m.name == chosen)
    strict_ok = model.has_strict_point
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
    return client, models, error, chosen, STRICT_OPERATING_POINT if point == STRICT_POINT else None


VERDICT_COLOURS = {"AI-generated": "red", "Real": "green", results.INCONCLUSIVE: "gray"}


def show_verdict(row: results.ResultRow, content: bytes) -> None:
    """One image (and its Grad-CAM overlay, when there is one) beside its verdict, probability bar
    and the warnings that make the verdict unreliable."""
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
        "rows": rows,
        "contents": [content for _, content in files],
        "fatal": fatal,
    }
    st.session_state["scored"] = scored
    return scored


def show_results(scored: dict) -> None:
    """Summary, each image with its verdict, the results table and download buttons."""
    rows: list[results.ResultRow] = scored["rows"]
    if scored["fatal"] is not None:
        st.error(f"Scoring stopped: {scored['fatal'].message}")
    counts = results.summary(rows)
    columns = st.columns(len(counts))
    for column, (label, count) in zip(columns, counts.items(), strict=True):
        column.metric(label, count)
    for row, content in list(zip(rows, scored["contents"], strict=True))[:MAX_PREVIEWS]:
        show_verdict(row, content)
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
    client, models, error, model, point = sidebar()
    chosen = next((m for m in models if m.name == model), None)
    if chosen is not None and chosen.is_demo:
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
        show_results(score(client, list(uploads), model, point, explain))
    elif uploads:
        st.info("The images will be classified once the API is reachable and a model is available.")
    about_panel(models)


if __name__ == "__main__":
    main()
