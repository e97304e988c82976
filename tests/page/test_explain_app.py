"""The Streamlit page's "Show Grad-CAM overlay" option, against a real API (with and without model.keras)."""

from __future__ import annotations

import io

import pytest

pytest.importorskip("requests")
streamlit_testing = pytest.importorskip("streamlit.testing.v1")

from builders import image_bytes, two_images  # noqa: E402
from conftest import page, serve_api  # noqa: E402
from PIL import Image  # noqa: E402

from aiclassify.page import results  # noqa: E402
from aiclassify.page.client import ApiClient  # noqa: E402


@pytest.fixture(scope="module")
def api(tiny_run, bare_saved_model):
    """``run`` explains (run directory); ``bare`` is the same run's SavedModel alone and cannot."""
    with serve_api({"run": str(tiny_run), "bare": str(bare_saved_model)}) as url:
        yield url


def test_score_files_with_overlays(api):
    rows, fatal = results.score_files(ApiClient(api), two_images(), model="run", explain=True)
    assert fatal is None and all(r.ok for r in rows)
    assert [Image.open(io.BytesIO(r.overlay_png)).size for r in rows] == [(48, 40), (40, 30)]
    assert all(r.overlay_note is None for r in rows)
    assert "overlay_png" not in results.to_csv(rows) and "overlay_png" not in results.to_json(rows)
    plain, _ = results.score_files(ApiClient(api), two_images(), model="run")
    assert all(r.ok and r.overlay_png is None for r in plain)


def test_model_that_cannot_explain_is_scored_without_overlay(api):
    rows, fatal = results.score_files(ApiClient(api), two_images(), model="bare", explain=True)
    assert fatal is None and all(r.ok and r.overlay_png is None for r in rows)
    assert all("model.keras" in r.overlay_note for r in rows)


def test_page_shows_the_overlay_next_to_the_image(api, monkeypatch):
    if not hasattr(streamlit_testing.AppTest, "file_uploader"):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader (the logic is tested above)")
    at = page(monkeypatch, api)
    assert at.checkbox(key="explain").label == "Show Grad-CAM overlay"
    at.selectbox(key="model").set_value("run")
    at.checkbox(key="explain").check()
    at.file_uploader(key="uploads").set_value([("render.png", image_bytes(size=(40, 30)), "image/png")])
    at.run()
    assert not at.exception, at.exception
    [row] = at.session_state["scored"]["rows"]
    assert row.ok and Image.open(io.BytesIO(row.overlay_png)).size == (40, 30)
    captions = [caption for element in at.get("image") for caption in element.captions]
    assert captions == ["", "Grad-CAM: red raises P(AI-generated)"]  # the image, then its overlay
    at.checkbox(key="explain").uncheck().run()
    [row] = at.session_state["scored"]["rows"]
    assert row.overlay_png is None
    assert [caption for element in at.get("image") for caption in element.captions] == [""]
