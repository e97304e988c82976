"""The Streamlit upload page (app/streamlit_app.py, its helpers in aiclassify.page) against a real API.

The API is served on 127.0.0.1 by this test module. The page's logic (API client, batch scoring,
CSV/JSON) is tested directly; the page itself through Streamlit's AppTest: model choice, operating
point, uploads, results table, download buttons and the message when the API is down or slow.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("requests")
streamlit_testing = pytest.importorskip("streamlit.testing.v1")

from builders import FakePredictor, encode, two_images  # noqa: E402
from conftest import APP, assert_runs_without_tensorflow, free_port, page, serve_api, serve_app, silent_server  # noqa: E402

from aiclassify.page import about, results, wait_api  # noqa: E402
from aiclassify.page.client import ApiCallError, ApiClient, api_url_from_env, timeout_from_env  # noqa: E402


@pytest.fixture(scope="module")
def api(api_models) -> Iterator[str]:
    """Base URL of the real API for this module: ``faces`` (tiny run) and ``general`` (calibrated run,
    with stored operating points, fpr_1pct among them; ``faces`` has none)."""
    with serve_api(api_models) as url:
        yield url


# --- client and results, against the real API -------------------------------------------------


def test_page_helpers_do_not_import_tensorflow(tmp_path):
    # run outside the repository, so the helpers come from the installed package and not from sys.path
    assert_runs_without_tensorflow(
        "import aiclassify.page.client, aiclassify.page.results, aiclassify.page.about, "
        "aiclassify.page.wait_api, aiclassify.page.faces",
        tmp_path,
    )


def test_page_does_not_import_tensorflow(tmp_path):
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('page', sys.argv[1]); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))"
    )
    assert_runs_without_tensorflow(code, tmp_path, str(APP))


def test_api_url_from_env():
    assert api_url_from_env({}) == "http://127.0.0.1:8000"
    assert api_url_from_env({"AICLASSIFY_API_URL": "http://10.0.0.5:9000/ "}) == "http://10.0.0.5:9000"
    assert timeout_from_env({}) == 60 and timeout_from_env({"AICLASSIFY_API_TIMEOUT_S": "2.5"}) == 2.5
    assert timeout_from_env({"AICLASSIFY_API_TIMEOUT_S": "soon"}) == 60


def test_client_lists_models_and_metadata(api):
    models = {m.name: m for m in ApiClient(api).models_with_metadata()}
    assert set(models) == {"faces", "general"}
    assert all(m.available and m.version for m in models.values())
    assert models["general"].has_strict_point and not models["faces"].has_strict_point
    assert models["general"].details["operating_points"][0]["name"] == "fpr_1pct"


def test_score_files_table_csv_and_json(api):
    files = [two_images()[0], ("broken.png", b"this is not an image"), two_images()[1]]
    calls = []
    rows, fatal = results.score_files(
        ApiClient(api),
        files,
        model="general",
        operating_point="fpr_1pct",
        progress=lambda done, total, name: calls.append((done, total, name)),
    )
    assert fatal is None
    assert calls == [(1, 3, "photo.jpg"), (2, 3, "broken.png"), (3, 3, "render.png")]
    assert [r.file for r in rows] == ["photo.jpg", "broken.png", "render.png"]
    assert [r.ok for r in rows] == [True, False, True]
    assert "422" in rows[1].error
    for row in (rows[0], rows[2]):
        assert row.verdict in ("AI-generated", "Real")
        assert 0.0 <= row.probability_ai <= 1.0
        assert row.threshold == 0.9 and row.operating_point == "fpr_1pct"
        assert row.model == "general" and row.model_version
        assert row.verdict == ("AI-generated" if row.probability_ai >= row.threshold else "Real")
    assert (rows[0].width, rows[0].height, rows[0].format) == (48, 40, "JPEG")
    real = sum(r.verdict == "Real" for r in rows)
    assert results.summary(rows) == {"AI-generated": 2 - real, "Real": real, "Inconclusive": 0, "Failed": 1}

    table = list(csv.DictReader(io.StringIO(results.to_csv(rows))))
    assert [r["file"] for r in table] == ["photo.jpg", "broken.png", "render.png"]
    assert table[0]["verdict"] == rows[0].verdict
    assert float(table[0]["probability_ai"]) == rows[0].probability_ai
    assert table[0]["model"] == "general" and table[0]["width"] == "48" and table[1]["verdict"] == ""
    assert "422" in table[1]["error"]
    records = json.loads(results.to_json(rows))
    assert records[2]["verdict"] == rows[2].verdict and records[2]["height"] == 30
    assert records[1]["error"] and records[1]["probability_ai"] is None
    display = results.display_records(rows)
    assert display[0]["size"] == "48x40" and display[0]["model"].startswith("general v")


def test_default_threshold_without_operating_point(api):
    rows, fatal = results.score_files(ApiClient(api), two_images()[:1], model="faces")
    assert fatal is None and rows[0].ok
    assert rows[0].threshold == 0.5 and rows[0].operating_point == "default" and rows[0].model == "faces"


def test_api_errors_are_messages():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiCallError, match="Cannot reach the API") as down:
        ApiClient(url).models()
    assert down.value.api_unusable
    rows, fatal = results.score_files(ApiClient(url), two_images())
    assert fatal is not None and fatal.kind == "unreachable"
    assert [r.ok for r in rows] == [False, False] and rows[1].error.startswith("not scored")
    with silent_server() as slow:
        started = time.monotonic()
        with pytest.raises(ApiCallError, match="did not answer within 1 s") as hung:
            ApiClient(slow, timeout_s=1).predict(two_images()[:1])
        assert hung.value.kind == "timeout" and time.monotonic() - started < 10


def test_wait_api(api, capsys):
    assert wait_api.wait(api, timeout_s=20)
    assert "model general: AVAILABLE" in capsys.readouterr().out
    assert not wait_api.wait(f"http://127.0.0.1:{free_port()}", timeout_s=1.5)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    assert not wait_api.wait(api, timeout_s=5, pid=dead.pid)
    assert "exited" in capsys.readouterr().err


def test_wait_api_command_line(api, tmp_path):
    command = [sys.executable, "-m", "aiclassify.page.wait_api"]
    ready = subprocess.run(
        [*command, api, "--timeout", "20"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ready.returncode == 0 and "model general: AVAILABLE" in ready.stdout, ready.stderr[-2000:]
    down = subprocess.run(
        [*command, f"http://127.0.0.1:{free_port()}", "--timeout", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 1 and "was not ready" in down.stderr


def test_unknown_model_is_an_http_error(api):
    with pytest.raises(ApiCallError, match="404: unknown model") as error:
        ApiClient(api).predict(two_images()[:1], model="nope")
    assert error.value.status == 404 and not error.value.api_unusable


def test_about_texts():
    details = {
        "run": "demo",
        "architecture": "cnn5",
        "image_size": 32,
        "threshold": 0.5,
        "dataset": {"source": "demo", "counts": {"train": {"real": 420, "ai-generated": 420}}},
        "metrics": {"test": {"accuracy": 0.975, "examples": 180, "roc_auc": 0.99}},
        "operating_points": [{"name": "fpr_1pct", "threshold": 0.9}],
    }
    text = dict(about.model_summary("faces", details))
    assert (
        "420 real" in text["Trained on"]
        and "97.5 % accuracy on the test split (180 images)" in (text["Measured accuracy"])
    )
    assert "fpr_1pct (threshold 0.9)" in text["Thresholds"]
    assert dict(about.model_summary("x", {}))["Measured accuracy"] == "not reported by the API"


# --- the page, through AppTest ------------------------------------------------------------------


def markdown_text(at) -> str:
    """All markdown of the page (main area and sidebar)."""
    return "\n".join(m.value for m in at.markdown)


def test_page_lists_models_and_operating_points(api, monkeypatch):
    at = page(monkeypatch, api)
    assert not at.error
    # the API serves a face model and a general one, and its face detector: auto comes first
    assert at.selectbox(key="model").options == ["auto: faces + whole image", "faces", "general"]
    assert at.selectbox(key="model").value == "auto"
    assert at.radio(key="point").options == ["Default threshold"]  # auto uses faces: it has no fpr_1pct
    at.selectbox(key="model").set_value("faces").run()
    assert at.radio(key="point").options == ["Default threshold"]  # faces has no fpr_1pct
    at.selectbox(key="model").set_value("general").run()
    assert at.radio(key="point").options == ["Default threshold", "Strict: 1% false positives"]
    text = markdown_text(at)
    assert "detect nothing in the wild" in text and "architecture cnn_small2" in text


def test_page_upload_results_and_downloads(api, monkeypatch):
    if not hasattr(streamlit_testing.AppTest, "file_uploader"):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader (the logic is tested above)")
    at = page(monkeypatch, api)
    at.selectbox(key="model").set_value("general").run()
    at.radio(key="point").set_value("Strict: 1% false positives")
    files = [
        (name, data, "image/jpeg" if name.endswith("jpg") else "image/png") for name, data in two_images()
    ]
    at.file_uploader(key="uploads").set_value(files + [("bad.png", b"not an image", "image/png")])
    at.run()
    assert not at.exception, at.exception
    rows = at.session_state["scored"]["rows"]
    assert [r.file for r in rows] == ["photo.jpg", "render.png", "bad.png"]
    assert [r.ok for r in rows] == [True, True, False]
    assert all(r.operating_point == "fpr_1pct" and r.model == "general" for r in rows[:2])
    text = markdown_text(at)
    for row in rows[:2]:
        assert f":{'red' if row.verdict == 'AI-generated' else 'green'}[{row.verdict}]" in text
    assert any("bad.png" in e.value and "422" in e.value for e in at.error)
    assert all(r.evidence and r.evidence["declared"] == "none" for r in rows[:2])  # metadata evidence
    assert text.count("No metadata declares this image AI-generated") == 2
    assert [e.label for e in at.expander].count("Evidence (metadata, not part of the verdict)") == 2
    bars = [p for p in at.get("progress") if "Probability AI-generated" in p.proto.text]
    assert len(bars) == 2
    assert any("threshold 0.900 (fpr_1pct)" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["photo.jpg", "render.png", "bad.png"]
    assert list(table["verdict"][:2]) == [r.verdict for r in rows[:2]]
    assert [b.label for b in at.get("download_button")] == ["Download CSV", "Download JSON"]
    assert [r["verdict"] for r in csv.DictReader(io.StringIO(results.to_csv(rows)))][:2] == [
        r.verdict for r in rows[:2]
    ]


def test_page_when_api_is_down(monkeypatch):
    at = page(monkeypatch, f"http://127.0.0.1:{free_port()}")
    assert any("Cannot reach the API" in e.value for e in at.error)
    assert at.file_uploader(key="uploads") is not None and at.button(key="retry") is not None
    assert "No model information" in markdown_text(at) and "detect nothing in the wild" in markdown_text(at)


def test_page_when_api_hangs(monkeypatch):
    monkeypatch.setenv("AICLASSIFY_API_TIMEOUT_S", "1")
    with silent_server() as url:
        at = page(monkeypatch, url)
    assert any("did not answer within 1 s" in e.value for e in at.error)


def test_page_while_models_load(monkeypatch):
    from aiclassify.serving.app import create_app

    predictor = FakePredictor()
    predictor.release.clear()  # the warm-up call blocks: the model stays LOADING
    flask_app = create_app(config={"models": {"slow": "unused"}}, predictors={"slow": predictor})
    with serve_app(flask_app) as url:
        try:
            at = page(monkeypatch, url)
            assert any("No model is available yet" in w.value for w in at.warning)
            assert any("slow" in w.value and "loading" in w.value for w in at.sidebar.warning)
            assert at.selectbox(key="model_none").disabled
        finally:
            predictor.release.set()


# --- the inconclusive band, warnings and demo models --------------------------------------------------

BAND = {"lower": 0.2, "upper": 0.8, "target_fpr": 0.03, "empty": False, "validation": {"coverage": 0.9}}


def banded_app(demo: bool):
    """An API serving ``banded``: every image scores 0.6 (inconclusive in the band 0.2-0.8, AI-generated
    at the default threshold 0.5), 32x32 input."""
    from aiclassify.predict import Predictor
    from aiclassify.serving.app import create_app

    predictor = Predictor(
        lambda images: [0.6] * len(images),
        {"name": "banded", "model": "fake", "threshold": 0.5, "image_size": 32, "demo": demo},
        {"temperature": 1.0, "operating_points": [], "band": BAND},
    )
    return create_app(config={"background_loading": False}, predictors={"banded": predictor})


def test_rows_carry_verdict_label_band_and_warnings():
    prediction = {
        "verdict": "inconclusive",
        "label": "ai-generated",
        "band": {"lower": 0.2, "upper": 0.8},
        "warnings": [
            {"code": "grayscale", "message": "greyscale"},
            {"code": "demo_model", "message": "demo"},
        ],
        "probability_ai": 0.6,
        "threshold": 0.5,
        "model": {"name": "banded", "version": "1"},
    }
    row = results.row_from_prediction("a.png", prediction)
    assert (row.verdict, row.label, row.inconclusive) == ("Inconclusive", "AI-generated", True)
    assert (row.band_lower, row.band_upper) == (0.2, 0.8)
    assert row.warning_codes == "grayscale, demo_model"
    plain = results.row_from_prediction("b.png", {"label": "real", "probability_ai": 0.1})  # an older API
    assert (plain.verdict, plain.label, plain.warnings) == ("Real", "Real", [])
    rows = [row, plain]
    assert results.summary(rows) == {"AI-generated": 0, "Real": 1, "Inconclusive": 1, "Failed": 0}
    table = list(csv.DictReader(io.StringIO(results.to_csv(rows))))
    assert [r["verdict"] for r in table] == ["Inconclusive", "Real"]
    assert table[0]["label"] == "AI-generated" and table[0]["warnings"] == "grayscale; demo_model"
    assert table[0]["band_lower"] == "0.2" and table[1]["band_lower"] == ""
    records = json.loads(results.to_json(rows))
    assert records[0]["verdict"] == "Inconclusive" and records[0]["warnings"][0]["code"] == "grayscale"
    display = results.display_records(rows)
    assert display[0]["verdict"] == "Inconclusive" and display[0]["warnings"] == "grayscale, demo_model"


def test_about_texts_show_the_band_and_demo_models():
    text = dict(about.model_summary("x", {"band": BAND, "demo": True}))
    assert "inconclusive in between" in text["Inconclusive band"] and "90.0 %" in text["Inconclusive band"]
    assert "detects nothing real" in text["Demo model"]
    note = "nothing is called ai-generated: 51 real validation images bound the error rate only to 5.7%"
    bounded = {**BAND, "confidence": 0.95, "notes": [note]}
    text = dict(about.model_summary("x", {"band": bounded}))["Inconclusive band"]
    assert "bounded with 95% confidence" in text and text.endswith(note)
    text = dict(
        about.model_summary("x", {"band": None, "band_note": "no band: the run has not been evaluated"})
    )
    assert "has not been evaluated" in text["Inconclusive band"] and "Demo model" not in text


def test_page_shows_a_demo_banner_only_for_demo_models(monkeypatch):
    for demo in (True, False):
        with serve_app(banded_app(demo)) as url:
            at = page(monkeypatch, url)
        banners = [w.value for w in at.warning if "Demo model: it detects nothing real" in w.value]
        assert len(banners) == (1 if demo else 0)


def test_page_says_inconclusive_in_plain_words(monkeypatch):
    if not hasattr(streamlit_testing.AppTest, "file_uploader"):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader (the logic is tested above)")
    from PIL import Image

    grey = encode(Image.new("L", (20, 20), 120), "PNG")
    with serve_app(banded_app(True)) as url:
        at = page(monkeypatch, url)
        at.file_uploader(key="uploads").set_value([("grey.png", grey, "image/png")])
        at.run()
    assert not at.exception, at.exception
    [row] = at.session_state["scored"]["rows"]
    assert (row.verdict, row.label) == ("Inconclusive", "AI-generated")
    text = markdown_text(at)
    assert ":gray[Inconclusive]" in text and ":red[" not in text and ":green[" not in text
    assert "Inconclusive: the model is not confident either way" in text
    warnings = [w.value for w in at.warning]
    assert any("greyscale" in w for w in warnings) and any("enlarged to 32x32" in w for w in warnings)
    assert any("Demo model: it detects nothing real" in w for w in warnings)
    assert any("(default): AI-generated" in c.value and "0.200" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["verdict"]) == ["Inconclusive"] and list(table["label at threshold"]) == [
        "AI-generated"
    ]
    assert [m.label for m in at.metric] == ["AI-generated", "Real", "Inconclusive", "Failed"]
