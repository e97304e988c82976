"""The page's faces in a picture: ``GET /v1/faces``, the boxes drawn on each image, one table row per
face (on the page, in the CSV and the JSON), and the page itself through AppTest with ``model=auto``.

The drawing and the rows are tested on hand-written API answers of the documented shape; the page
against the real API in-process on fake predictors and builders.FakeDetector (two faces in every image
of 64 px a side or more, none in smaller ones), and against an older API without ``/v1/faces``.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytest.importorskip("requests")
streamlit_testing = pytest.importorskip("streamlit.testing.v1")

from builders import FakeDetector, FakePredictor, exif_rotated_jpeg, image_bytes  # noqa: E402
from conftest import OPERATING_POINTS, page, serve_app  # noqa: E402
from PIL import Image  # noqa: E402

from aiclassify.page import faces as page_faces  # noqa: E402
from aiclassify.page import results  # noqa: E402
from aiclassify.page.client import ApiClient  # noqa: E402

BACKGROUND = (40, 90, 200)
RED, GREEN, GREY = (page_faces.VERDICT_RGB[v] for v in ("AI-generated", "Real", "Inconclusive"))


def face(index: int, box, verdict: str = "AI-generated", probability: float = 0.93) -> results.FaceResult:
    """A scored face as the page holds it."""
    return results.FaceResult(
        index=index, box=box, verdict=verdict, probability_ai=probability, detector_confidence=0.99
    )


def band_height(pixels, x: int, top: int, colour) -> int:
    """How many pixels of ``colour`` run upwards from just above ``(x, top)``: the label band's height."""
    height = 0
    while top - height - 1 >= 0 and pixels[x, top - height - 1] == colour:
        height += 1
    return height


# --- drawing ---------------------------------------------------------------------------------------


def test_each_face_gets_a_box_of_its_verdict_colour_where_it_is():
    image = Image.new("RGB", (800, 600), BACKGROUND)
    drawn = page_faces.draw_faces(
        image, [face(0, (100, 150, 200, 220)), face(1, (500, 200, 120, 150), "Real", 0.07)]
    )
    assert drawn.size == (800, 600) and image.getpixel((100, 260)) == BACKGROUND  # a copy
    pixels = drawn.load()
    # the four edges of face 1 (x 100-299, y 150-369), its inside and outside untouched
    assert pixels[100, 260] == pixels[299, 260] == pixels[200, 150] == pixels[200, 369] == RED
    assert pixels[200, 260] == pixels[96, 260] == pixels[303, 260] == pixels[200, 373] == BACKGROUND
    assert pixels[500, 275] == pixels[619, 275] == pixels[560, 349] == GREEN
    assert pixels[560, 275] == BACKGROUND
    # a label band of the box's colour above each box, with white text in it
    assert band_height(pixels, 101, 150, RED) >= 14 and band_height(pixels, 501, 200, GREEN) >= 14
    band = drawn.crop((100, 150 - band_height(pixels, 101, 150, RED), 300, 150))
    assert (255, 255, 255) in {colour for _, colour in band.getcolors(100_000)}


def test_a_4000x3000_and_a_64x64_image_are_drawn_visibly():
    large = page_faces.draw_faces(
        Image.new("RGB", (4000, 3000), BACKGROUND), [face(0, (2900, 700, 480, 600))]
    )
    assert large.size == (1600, 1200)  # shrunk for the page: 0.4 of the original
    pixels = large.load()
    left, top = 1160, 280  # 2900 x 0.4, 700 x 0.4
    assert all(pixels[left + dx, 400] == RED for dx in range(8))  # an 8 px line at 1600 px
    assert pixels[left + 9, 400] == BACKGROUND and pixels[1351, 400] == RED and pixels[1300, 519] == RED
    large_band = band_height(pixels, left + 1, top, RED)

    small = page_faces.draw_faces(
        Image.new("RGB", (64, 64), BACKGROUND), [face(0, (10, 12, 30, 36), "Inconclusive", 0.55)]
    )
    assert small.size == (512, 512)  # enlarged 8 times, so that the label can be read
    pixels = small.load()
    assert pixels[80, 200] == pixels[82, 200] == pixels[319, 200] == pixels[200, 383] == GREY  # 3 px
    assert pixels[84, 200] == BACKGROUND and pixels[200, 200] == BACKGROUND
    small_band = band_height(pixels, 81, 96, GREY)
    assert small_band >= 14 and large_band >= 2 * small_band  # the font grows with the image


def test_a_label_at_the_top_edge_goes_inside_the_box():
    drawn = page_faces.draw_faces(Image.new("RGB", (600, 600), BACKGROUND), [face(0, (590, 0, 10, 80))])
    pixels = drawn.load()
    assert pixels[599, 40] == RED  # the box at the right edge
    assert pixels[580, 1] == RED  # the band starts at the top and is pulled left into the image


def test_labels_say_number_verdict_and_probability():
    assert page_faces.face_label(face(0, None)) == "1 AI 0.93"
    assert page_faces.face_label(face(1, None, "Real", 0.071)) == "2 Real 0.07"
    assert page_faces.face_label(face(2, None, "Inconclusive", 0.5)) == "3 Inconclusive 0.50"


def test_annotated_image_is_turned_by_its_exif_orientation():
    content = exif_rotated_jpeg(6, size=(40, 20))  # stored 40x20, shown (and seen by the API) 20x40
    drawn = Image.open(io.BytesIO(page_faces.annotated_jpeg(content, [face(0, (2, 4, 14, 30))])))
    assert drawn.format == "JPEG" and drawn.size == (256, 512)  # upright, enlarged 12.8 times
    red, green, blue = drawn.convert("RGB").getpixel((26, 250))  # the box's left edge, at x 2 x 12.8
    assert red > 150 and green < 110 and blue < 110


# --- rows, CSV and JSON ----------------------------------------------------------------------------


def api_face(index: int, box, verdict: str, probability: float, confidence: float) -> dict:
    """One entry of a prediction's ``faces``, as the API documents it."""
    x, y, width, height = box
    return {
        "index": index,
        "box": list(box),
        "detector_confidence": confidence,
        "landmarks": {
            "left_eye": [x + 0.3 * width, y + 0.4 * height],
            "right_eye": [x + 0.7 * width, y + 0.4 * height],
            "nose": [x + 0.5 * width, y + 0.55 * height],
            "mouth_left": [x + 0.35 * width, y + 0.75 * height],
            "mouth_right": [x + 0.65 * width, y + 0.75 * height],
        },
        "verdict": verdict,
        "label": "ai-generated" if probability >= 0.5 else "real",
        "probability_ai": probability,
        "probability_ai_uncalibrated": probability,
        "threshold": 0.5,
        "operating_point": None,
        "band": None,
        "warnings": [{"code": "small_face", "message": "small"}] if width < 100 else [],
        "model": {"name": "faces", "version": "7"},
    }


GROUP = {
    "verdict": "real",
    "label": "real",
    "probability_ai": 0.2,
    "threshold": 0.5,
    "warnings": [],
    "model": {"name": "general", "version": "3"},
    "width": 1200,
    "height": 500,
    "format": "JPEG",
    "faces": [
        api_face(1, (430, 40, 300, 380), "real", 0.07, 0.97),
        api_face(0, (40, 90, 90, 110), "ai-generated", 0.93, 0.998),
    ],
}


def test_rows_carry_each_face():
    row = results.row_from_prediction("group.jpg", GROUP)
    assert [f.number for f in row.faces] == [1, 2]  # by index, left to right
    first, second = row.faces
    assert (first.box, first.verdict, first.probability_ai, first.detector_confidence) == (
        (40, 90, 90, 110),
        "AI-generated",
        0.93,
        0.998,
    )
    assert first.warning_codes == "small_face" and second.warnings == []
    assert (second.verdict, second.label, second.model, second.model_version) == (
        "Real",
        "Real",
        "faces",
        "7",
    )
    assert first.landmarks["nose"] == [85.0, 150.5] and first.box_text == "x 40, y 90, 90x110"
    assert results.row_from_prediction("a.png", {**GROUP, "faces": []}).faces == []
    assert results.row_from_prediction("a.png", {**GROUP, "faces": None}).faces is None
    assert results.row_from_prediction("a.png", {"label": "real"}).faces is None  # an older API


def test_table_csv_and_json_have_a_row_per_face():
    rows = [
        results.row_from_prediction("group.jpg", GROUP),
        results.row_from_prediction("empty.png", {**GROUP, "faces": []}),
        results.row_from_prediction("plain.png", {**GROUP, "faces": None}),
        results.ResultRow(file="bad.png", error="422: not an image"),
    ]
    assert results.summary(rows) == {"AI-generated": 0, "Real": 3, "Inconclusive": 0, "Failed": 1}
    table = list(csv.DictReader(io.StringIO(results.to_csv(rows))))
    header = results.to_csv(rows).splitlines()[0].split(",")
    assert header[:15] == [
        "file",
        "verdict",
        "label",
        "warnings",
        "probability_ai",
        "band_lower",
        "band_upper",
        "threshold",
        "operating_point",
        "model",
        "model_version",
        "width",
        "height",
        "format",
        "error",
    ]  # the columns of before, in their order, then the faces'
    assert header[15:] == ["face", "faces_found", "box", "detector_confidence"]
    assert [(r["file"], r["face"]) for r in table] == [
        ("group.jpg", ""),
        ("group.jpg", "1"),
        ("group.jpg", "2"),
        ("empty.png", ""),
        ("plain.png", ""),
        ("bad.png", ""),
    ]
    image, one, two = table[:3]
    assert (image["verdict"], image["model"], image["width"], image["faces_found"], image["box"]) == (
        "Real",
        "general",
        "1200",
        "2",
        "",
    )
    assert (one["verdict"], one["probability_ai"], one["box"], one["detector_confidence"]) == (
        "AI-generated",
        "0.93",
        "40 90 90 110",
        "0.998",
    )
    assert (one["model"], one["model_version"], one["warnings"], one["width"], one["faces_found"]) == (
        "faces",
        "7",
        "small_face",
        "",
        "",
    )
    assert (two["verdict"], two["box"], two["warnings"]) == ("Real", "430 40 300 380", "")
    assert table[3]["faces_found"] == "0" and table[4]["faces_found"] == "" and table[5]["error"]

    records = json.loads(results.to_json(rows))
    assert [r["face"] for r in records] == [None, 1, 2, None, None, None]
    assert records[1]["box"] == [40, 90, 90, 110] and records[1]["warnings"][0]["code"] == "small_face"
    assert records[0]["faces_found"] == 2 and records[0]["box"] is None and records[4]["faces_found"] is None
    assert records[2]["probability_ai"] == 0.07 and records[2]["detector_confidence"] == 0.97

    display = results.display_records(rows)
    assert [(r["file"], r["face"]) for r in display] == [(r["file"], r["face"]) for r in table]
    assert display[1]["verdict"] == "AI-generated" and display[1]["box"] == "x 40, y 90, 90x110"
    assert display[1]["detector confidence"] == 0.998 and display[1]["model"] == "faces v7"
    assert display[0]["faces found"] == 2 and display[3]["faces found"] == 0
    assert display[4]["faces found"] is None


def test_without_faces_the_table_is_as_before():
    rows = [results.row_from_prediction("plain.png", {**GROUP, "faces": None})]
    assert list(results.display_records(rows)[0]) == [
        "file",
        "verdict",
        "label at threshold",
        "warnings",
        "probability AI",
        "threshold",
        "model",
        "size",
        "error",
    ]
    [record] = json.loads(results.to_json(rows))
    assert record["face"] is None and record["faces_found"] is None and record["box"] is None


# --- GET /v1/faces and the page, against the API ---------------------------------------------------


def faces_api(face_detection: bool = True, detector: FakeDetector | None = None):
    """The API in-process: ``faces`` (uncalibrated) and ``general`` (with operating points) on fake
    predictors, and ``detector`` (default builders.FakeDetector) unless ``face_detection`` is off;
    loaded in the background when a ``detector`` is given."""
    from aiclassify.serving.app import create_app

    calibration = {"temperature": 1.0, "operating_points": OPERATING_POINTS}
    settings = {"background_loading": detector is not None, "max_batch_wait_ms": 0}
    return create_app(
        {**settings, "face_detection": face_detection},
        predictors={"faces": FakePredictor(), "general": FakePredictor(calibration=calibration)},
        face_detector=detector or FakeDetector(),
    )


class BlockedDetector(FakeDetector):
    """A FakeDetector whose searches wait for ``release``: the API's detector stays LOADING."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def detect(self, image):
        """Wait for ``release`` (30 s at most), then search as FakeDetector does."""
        self.release.wait(30)
        return super().detect(image)


def without_faces_endpoint(flask_app):
    """``flask_app`` answering 404 at ``/v1/faces``, as an API from before faces were scored."""
    inner = flask_app.wsgi_app

    def wsgi_app(environ, start_response):
        if environ.get("PATH_INFO") == page_faces.FACES_PATH:
            start_response("404 NOT FOUND", [("Content-Type", "application/json")])
            return [b'{"error": "not found"}']
        return inner(environ, start_response)

    flask_app.wsgi_app = wsgi_app
    return flask_app


@contextmanager
def served(flask_app) -> Iterator[str]:
    """``flask_app`` on loopback (conftest.serve_app)."""
    with serve_app(flask_app) as url:
        yield url


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    """The API with faces scored (see :func:`faces_api`)."""
    with served(faces_api()) as url:
        yield url


def test_faces_info(api):
    info = page_faces.faces_info(ApiClient(api))
    assert info.available and (info.face_model, info.general_model) == ("faces", "general")
    assert info.detector_state == "AVAILABLE" and info.detector["max_faces"] == 20 and info.note is None
    with served(faces_api(face_detection=False)) as url:
        off = page_faces.faces_info(ApiClient(url))
    assert not off.available and "turned off" in off.note and off.detector_state is None
    with served(without_faces_endpoint(faces_api())) as url:
        old = page_faces.faces_info(ApiClient(url))
    assert not old.available and "/v1/faces" in old.note


def markdown_text(at) -> str:
    """All markdown of the page (main area and sidebar)."""
    return "\n".join(m.value for m in at.markdown)


def upload(at, files: list[tuple[str, bytes]]):
    """Upload ``files`` and run the page; the scored rows."""
    at.file_uploader(key="uploads").set_value([(name, data, "image/png") for name, data in files])
    at.run()
    assert not at.exception, at.exception
    return at.session_state["scored"]["rows"]


def needs_uploads():
    """Skip when this Streamlit's AppTest cannot drive st.file_uploader."""
    if not hasattr(streamlit_testing.AppTest, "file_uploader"):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader (the logic is tested above)")


def test_page_offers_auto_first_and_shows_every_face(api, monkeypatch):
    needs_uploads()
    at = page(monkeypatch, api)
    model = at.selectbox(key="model")
    assert model.options == [page_faces.AUTO_LABEL, "faces", "general"] and model.value == "auto"
    assert at.radio(key="point").options == ["Default threshold"]  # the face model has no fpr_1pct
    rows = upload(
        at, [("group.png", image_bytes(size=(640, 480))), ("small.png", image_bytes(size=(48, 40)))]
    )
    assert at.session_state["scored"]["model"] == "auto"
    group, small = rows
    assert group.model == "general" and len(group.faces) == 2 and small.faces == []
    assert all(f.model == "faces" and f.box for f in group.faces)
    text = markdown_text(at)
    assert text.count("Whole image, scored by the general model **general**:") == 2
    assert sum(m.value.startswith("### ") for m in at.markdown) == 2  # one verdict heading per image
    for number, found in enumerate(group.faces, start=1):
        colour = {"AI-generated": "red", "Real": "green", "Inconclusive": "gray"}[found.verdict]
        assert (
            f"**Face {number}**: :{colour}[{found.verdict}] · P(AI-generated) {found.probability_ai:.1%} · "
            f"detector confidence {found.detector_confidence:.3f} · box {found.box_text}"
        ) in text
    assert "**Faces: 2 found**" in text and "a signal, not proof" in text
    assert "no face found in small\\.png" in text
    [picture] = [i for i in at.get("image") if any("Each box" in c for c in i.captions)]
    table = at.dataframe[0].value
    assert list(table["file"]) == ["group.png", "group.png", "group.png", "small.png"]
    assert list(table["face"]) == ["", "1", "2", ""] and list(table["faces found"])[::3] == [2, 0]
    assert list(table["verdict"][1:3]) == [f.verdict for f in group.faces]
    records = json.loads(results.to_json(rows))
    assert [r["face"] for r in records] == [None, 1, 2, None]
    assert [r["box"] for r in records[1:3]] == [list(f.box) for f in group.faces]


def test_the_picture_of_the_faces_has_their_boxes(api, monkeypatch):
    needs_uploads()
    at = page(monkeypatch, api)
    [group] = upload(at, [("group.png", image_bytes(size=(640, 480)))])
    drawn = Image.open(io.BytesIO(at.session_state["scored"]["faces_images"][0])).convert("RGB")
    assert drawn.size == (640, 480)
    for found in group.faces:
        x, y, width, height = found.box
        red, green, blue = (int(v) for v in drawn.getpixel((x + 1, y + height // 2)))
        expected = page_faces.VERDICT_RGB[found.verdict]
        assert max(abs(red - expected[0]), abs(green - expected[1]), abs(blue - expected[2])) < 40


def test_page_with_the_face_model_warns_when_there_is_no_face(api, monkeypatch):
    needs_uploads()
    at = page(monkeypatch, api)
    at.selectbox(key="model").set_value("faces").run()
    [small] = upload(at, [("small.png", image_bytes(size=(48, 40)))])
    assert small.faces == [] and "no_face" in small.warning_codes
    assert any("no face was found" in w.value for w in at.warning)  # as the page shows warnings
    text = markdown_text(at)
    assert "Whole image, scored by the face model **faces**:" in text and "no face found" in text


def test_page_with_a_general_model_is_as_before(api, monkeypatch):
    needs_uploads()
    at = page(monkeypatch, api)
    at.selectbox(key="model").set_value("general").run()
    assert at.radio(key="point").options == ["Default threshold", "Strict: 1% false positives"]
    [row] = upload(at, [("group.png", image_bytes(size=(640, 480)))])
    assert row.faces is None and "Whole image" not in markdown_text(at) and "Faces" not in markdown_text(at)
    assert "face" not in list(at.dataframe[0].value.columns)


@pytest.mark.parametrize("older", [True, False], ids=["no /v1/faces", "face detection off"])
def test_page_without_face_scoring_offers_no_auto(older, monkeypatch):
    flask_app = faces_api(face_detection=older)
    with served(without_faces_endpoint(flask_app) if older else flask_app) as url:
        at = page(monkeypatch, url)
    assert (
        at.selectbox(key="model").options == ["faces", "general"]
        and at.selectbox(key="model").value == "faces"
    )
    assert not at.error


def test_page_while_the_face_detector_loads(monkeypatch):
    detector = BlockedDetector()
    with served(faces_api(detector=detector)) as url:
        try:
            deadline = time.monotonic() + 20
            while not all(m.available for m in ApiClient(url).models()) and time.monotonic() < deadline:
                time.sleep(0.05)  # the models load; the detector's warm-up search waits
            at = page(monkeypatch, url)
        finally:
            detector.release.set()
    assert at.selectbox(key="model").options == ["faces", "general"]
    assert any(
        "Faces are not scored one by one" in c.value and "loading" in c.value for c in at.sidebar.caption
    )
