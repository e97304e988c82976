"""End to end in a real headless Chromium: the API and ``streamlit run`` on loopback, two uploads,
four files' evidence, a group photo's faces (with ``model=auto``, from the real face photos of
../shared, skipped when absent) and the quiz.

Skipped (with the reason) when /usr/bin/chromium or the playwright package is missing; CI installs
both. Saves a screenshot under pytest's tmp. docs/screenshot.png is written when it is missing or
when ``AICLASSIFY_UPDATE_SCREENSHOT=1``, so a test run does not change a committed file. Make it
with the demo models, whose verdicts mean something (the tiny test models' do not)::

    make demo
    AICLASSIFY_E2E_MODELS=faces=runs/demo,general=runs/demo-general AICLASSIFY_UPDATE_SCREENSHOT=1 \
        .venv/bin/python -m pytest tests/page/test_browser_e2e.py
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("AICLASSIFY_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"browser test skipped: no Chromium at {CHROMIUM} "
        "(apt-get install -y --no-install-recommends chromium)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="browser test skipped: playwright is not installed (pip install playwright)"
)
requests = pytest.importorskip("requests")
pytest.importorskip("streamlit")

from conftest import APP, REPO, free_port, serve_api, server_process  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_TIMEOUT_S = 60  # streamlit start-up on a busy machine
RESULT_TIMEOUT_S = 60  # page load, upload and two API calls
SCREENSHOT = REPO / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def api(request) -> Iterator[str]:
    """Base URL of the real API on 127.0.0.1: the tiny test runs, or ``AICLASSIFY_E2E_MODELS``."""
    models = os.environ.get("AICLASSIFY_E2E_MODELS") or request.getfixturevalue("api_models")
    with serve_api(models) as url:
        yield url


@pytest.fixture(scope="module")
def streamlit_url(api, tmp_path_factory) -> Iterator[str]:
    """``streamlit run app/streamlit_app.py`` on a free loopback port, talking to ``api``."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {
        **os.environ,
        "AICLASSIFY_API_URL": api,
        "AICLASSIFY_API_TIMEOUT_S": "30",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]
    url = f"http://127.0.0.1:{port}"
    with server_process("streamlit", command, f"{url}/_stcore/health", log, env, START_TIMEOUT_S, grace_s=10):
        yield url


def sample_images(directory: Path) -> list[Path]:
    """A fresh real and AI-generated demo image at 32 px, the size the demo models were trained on."""
    from aiclassify.data.demo import write_samples

    return write_samples(directory, image_size=32)


def small_png(data: bytes, width: int = 900) -> bytes:
    """A screenshot cropped below the content, scaled to ``width`` and quantised, to keep it small."""
    from PIL import Image, ImageChops

    image = Image.open(io.BytesIO(data)).convert("RGB")
    main = image.crop((image.width // 3, 0, image.width, image.height))  # right of the sidebar
    box = ImageChops.difference(main, Image.new("RGB", main.size, "white")).getbbox()
    if box:
        image = image.crop((0, 0, image.width, min(image.height, box[3] + 40)))
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def test_upload_two_images_in_chromium(streamlit_url, tmp_path):
    images = sample_images(tmp_path / "images")
    timeout_ms = RESULT_TIMEOUT_S * 1000
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1350})
            page.set_default_timeout(timeout_ms)
            page.goto(streamlit_url, wait_until="domcontentloaded")
            page.get_by_text("AI-generated or real?").first.wait_for()
            page.get_by_text("Operating point").first.wait_for()  # models were listed
            page.locator("input[type=file]").set_input_files([str(path) for path in images])
            page.get_by_role("button", name="Download CSV").wait_for()
            verdicts = (
                page.locator("h3")
                .filter(has_text="AI-generated")
                .or_(page.locator("h3").filter(has_text="Real"))
            )
            deadline = time.monotonic() + RESULT_TIMEOUT_S
            while verdicts.count() < 2 and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            texts = [t.strip() for t in verdicts.all_inner_texts()]
            body = page.inner_text("body")
            page.wait_for_timeout(500)  # let images and the table finish drawing
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    (tmp_path / "screenshot.png").write_bytes(shot)
    assert len(texts) == 2 and set(texts) <= {"AI-generated", "Real"}, texts
    for path in images:
        assert path.name in body
    assert "Probability AI-generated" in body and "Download JSON" in body
    assert "Cannot reach the API" not in body
    (tmp_path / "screenshot-small.png").write_bytes(small_png(shot))
    if os.environ.get("AICLASSIFY_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        shutil.copy(tmp_path / "screenshot-small.png", SCREENSHOT)


def test_evidence_of_four_files_in_chromium(streamlit_url, tmp_path, monkeypatch):
    """A signed AI image, the same tampered, an A1111 PNG and a plain photo: four evidence lists."""
    pytest.importorskip("c2pa", reason="browser evidence test skipped: c2pa-python is not installed")
    from evidence_files import A1111_PARAMETERS, c2pa_signed, camera_jpeg, make_credentials, png_with_text

    from aiclassify.evidence.c2pa import TRUST_ANCHORS_ENV
    from aiclassify.page.results import DECLARED_TEXT

    credentials = make_credentials()
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(credentials.ca_pem)
    monkeypatch.setenv(TRUST_ANCHORS_ENV, str(anchors))  # the API runs in this process
    signed = c2pa_signed(credentials, "JPEG")
    tampered = bytearray(signed)
    tampered[signed.rindex(b"\xff\xda") + 40] ^= 0x55
    files = {
        "signed.jpg": signed,
        "tampered.jpg": bytes(tampered),
        "a1111.png": png_with_text(parameters=A1111_PARAMETERS),
        "photo.jpg": camera_jpeg(),
    }
    expected = {
        "signed.jpg": "ai-generated (signed, valid)",
        "tampered.jpg": "ai-generated (signed, invalid)",
        "a1111.png": "ai-generated (metadata, unsigned)",
        "photo.jpg": "none",
    }
    paths = []
    for name, data in files.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1350})
            page.set_default_timeout(RESULT_TIMEOUT_S * 1000)
            page.goto(streamlit_url, wait_until="domcontentloaded")
            page.get_by_text("Operating point").first.wait_for()
            page.locator("input[type=file]").set_input_files([str(path) for path in paths])
            page.get_by_role("button", name="Download CSV").wait_for()
            sections = page.locator("[data-testid=stExpander]").filter(has_text="Evidence")
            deadline = time.monotonic() + RESULT_TIMEOUT_S
            while sections.count() < len(files) and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            texts = [" ".join(text.split()) for text in sections.all_inner_texts()]
        finally:
            browser.close()
    assert len(texts) == len(files), texts
    for name, text in zip(files, texts, strict=True):
        assert " ".join(DECLARED_TEXT[expected[name]].split()) in text, (name, text)
    assert "AUTOMATIC1111" in texts[2] or "astronaut" in texts[2], texts[2]
    assert "Make" in texts[3] or "camera" in texts[3].lower(), texts[3]


FACE_LINE = re.compile(
    r"Face (\d+): (AI-generated|Real|Inconclusive) · P\(AI-generated\) ([\d.]+)% · "
    r"detector confidence ([\d.]+) · box x (\d+), y (\d+), (\d+)x(\d+)"
)


def near(image, x: int, y: int, colour: tuple[int, int, int], reach: int = 3, tolerance: int = 60) -> bool:
    """Whether a pixel within ``reach`` of ``(x, y)`` in ``image`` (RGB) is within ``tolerance`` of
    ``colour`` in every channel."""
    for dx in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            px, py = x + dx, y + dy
            if 0 <= px < image.width and 0 <= py < image.height:
                pixel = image.getpixel((px, py))
                if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)):
                    return True
    return False


@pytest.mark.slow  # reads the real face photos of ../shared
def test_faces_of_a_group_photo_in_chromium(streamlit_url, shared_data, tmp_path):
    """Three face photos pasted on a background, scored with model=auto (the default once the API
    can score faces): the whole-image verdict of the general model, then each face with its box
    where the photo was pasted, its verdict, and a box of its verdict's colour in the picture."""
    from builders import GROUP_PLACES, GROUP_SIZE, group_photo
    from PIL import Image

    from aiclassify.page.faces import AUTO_LABEL, VERDICT_RGB

    path = tmp_path / "group.jpg"
    path.write_bytes(group_photo(shared_data / "faces" / "real_vs_fake" / "real-vs-fake"))
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1350})
            page.set_default_timeout(RESULT_TIMEOUT_S * 1000)
            page.goto(streamlit_url, wait_until="domcontentloaded")
            page.get_by_text("Operating point").first.wait_for()
            # the chosen model: the combobox's value (an input's in this Streamlit, a div's text before)
            chosen = page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.inner_html()
            page.locator("input[type=file]").set_input_files([str(path)])
            page.get_by_role("button", name="Download CSV").wait_for()
            page.get_by_text("Each box: face number").first.wait_for()
            picture = page.locator("[data-testid=stImage]").filter(has_text="Each box").locator("img")
            picture.first.wait_for()
            page.wait_for_timeout(500)  # let the picture and the table finish drawing
            drawn = Image.open(io.BytesIO(picture.first.screenshot())).convert("RGB")
            verdicts = [t.strip() for t in page.locator("h3").all_inner_texts()]
            body = page.inner_text("body")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    (tmp_path / "faces-screenshot.png").write_bytes(shot)
    drawn.save(tmp_path / "faces-picture.png")
    assert AUTO_LABEL in chosen and "Cannot reach the API" not in body
    assert "Whole image, scored by the general model general" in body
    assert [v for v in verdicts if v in ("AI-generated", "Real", "Inconclusive")], verdicts
    assert "Faces: 3 found" in body and "a signal, not proof" in body
    faces = FACE_LINE.findall(body)
    assert [int(f[0]) for f in faces] == [1, 2, 3], body
    scale = drawn.width / GROUP_SIZE[0]  # the picture as shown, 1200 px wide before the page scales it
    for (_, verdict, probability, confidence, *box), (px, py, side) in zip(faces, GROUP_PLACES, strict=True):
        x, y, width, height = map(int, box)
        assert 0 <= float(probability) <= 100 and 0.9 <= float(confidence) <= 1
        assert px <= x + width / 2 <= px + side and py <= y + height / 2 <= py + side  # in its photo
        assert 0.25 * side <= width <= side and 0.25 * side <= height <= side
        colour = VERDICT_RGB[verdict]
        for edge_x, edge_y in (
            (x, y + height // 2),
            (x + width - 1, y + height // 2),
            (x + width // 2, y + height - 1),
        ):
            assert near(drawn, round(edge_x * scale), round(edge_y * scale), colour), (
                verdict,
                edge_x,
                edge_y,
            )


def test_quiz_in_chromium(streamlit_url):
    """The quiz page: three questions answered in the browser, then the person, the model and the
    published baseline side by side, and the answers' CSV."""
    timeout_ms = RESULT_TIMEOUT_S * 1000
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1350})
            page.set_default_timeout(timeout_ms)
            page.goto(f"{streamlit_url}/quiz", wait_until="domcontentloaded")
            page.get_by_text("You against the model").first.wait_for()
            questions = page.get_by_label("Questions")
            questions.fill("3")
            questions.press("Enter")
            page.get_by_role("button", name="Start a new quiz").click()
            for number in (1, 2, 3):
                page.get_by_text(f"Question {number} of 3").wait_for()
                page.get_by_role("button", name="Real", exact=True).click()
            page.get_by_role("button", name="Download my answers (CSV)").wait_for()
            body = page.inner_text("body")
        finally:
            browser.close()
    assert "People in the published study" in body and "56.4%" in body
    assert "The model" in body and "could not answer" not in body
    assert " of 3 (" in body  # the person's score with its interval
