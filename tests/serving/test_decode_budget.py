"""The decode budget: costly uploads are refused before or while decoding, outside the model's batch."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from builders import assert_matches_openapi, encode, gradient, image_bytes, many_scan_jpeg
from PIL import Image, ImageFile, WebPImagePlugin

from aiclassify import preprocessing
from aiclassify.predict import Predictor
from aiclassify.predict import predictor as predictor_module
from aiclassify.predict.crops import PreparedPixels
from aiclassify.serving import explanations, webp_cost
from aiclassify.serving.app import create_app
from aiclassify.serving.decode_budget import BudgetedReader, DecodeClock
from aiclassify.serving.errors import ApiError
from aiclassify.serving.image_structure import jpeg_scan_starts
from aiclassify.serving.registry import ServedModel
from aiclassify.serving.settings import SettingsError, load_settings
from aiclassify.serving.state import serving_state
from aiclassify.serving.webp_cost import WebPRates

UNLIMITED_SCANS = 1_000_000  # lets a many-scan JPEG through to the decode budget
HOLD_S = 30  # how long a held decode waits for its release: far longer than any request here takes


def post(client, *images: bytes, explain: bool = False):
    files = [(io.BytesIO(data), f"image{index}.jpg") for index, data in enumerate(images)]
    url = "/predict?explain=true" if explain else "/predict"
    return client.post(url, data={"file": files}, content_type="multipart/form-data")


def burn_cpu(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class HeldDecode:
    """Holds the decode of one upload's bytes (``data``, a many-scan JPEG) once it is under way, past
    its 50th scan, until ``release`` is set: whichever thread decodes those bytes through the budget's
    reader waits there (its name in ``thread``), so a test can act while that request is still
    decoding. A hold not released within HOLD_S seconds lets go by itself and leaves
    ``released_in_time`` False: a client that stalled behind the held decode fails the test, never
    hangs it."""

    def __init__(self, monkeypatch, data: bytes, scan: int = 50):
        self.decoding, self.release = threading.Event(), threading.Event()
        self.released_in_time: bool | None = None
        self.thread: str | None = None
        offset = jpeg_scan_starts(data)[scan]
        init, read = BudgetedReader.__init__, BudgetedReader.read

        def tagging_init(reader, raw, clock):
            init(reader, raw, clock)
            reader.held = raw == data

        def holding_read(reader, size=-1):
            if getattr(reader, "held", False) and self.thread is None and reader.tell() >= offset:
                self.thread = threading.current_thread().name
                self.decoding.set()
                self.released_in_time = self.release.wait(HOLD_S)
            return read(reader, size)

        monkeypatch.setattr(BudgetedReader, "__init__", tagging_init)
        monkeypatch.setattr(BudgetedReader, "read", holding_read)


class SlowDecodes:
    """Makes decodes cost ``seconds`` more CPU time each, as a costly upload would: every Pillow decode
    of an image in ``formats`` and, with ``tensorflow``, every TensorFlow ``decode_rgb`` outside a
    traced function, once ``armed`` (from the start unless told otherwise; see :meth:`arm_after_scoring`)."""

    def __init__(self, monkeypatch, seconds, formats=("JPEG", "PNG"), tensorflow=False, armed=True):
        self.armed = armed
        self.monkeypatch = monkeypatch
        load = ImageFile.ImageFile.load

        def slow_load(image):
            if self.armed and image.tile and image.format in formats:
                burn_cpu(seconds)
            return load(image)

        monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
        if tensorflow:
            decode_rgb = preprocessing.decode_rgb

            def slow_decode_rgb(image_bytes):
                if self.armed:
                    burn_cpu(seconds)
                return decode_rgb(image_bytes)

            monkeypatch.setattr(preprocessing, "decode_rgb", slow_decode_rgb)

    def arm_after_scoring(self) -> None:
        """Arm once the model has scored the request's images: only the decodes after it are slow."""
        self.armed = False
        score = ServedModel.score

        def scoring_then_arming(model, inputs, timeout_s):
            results = score(model, inputs, timeout_s)
            self.armed = True
            return results

        self.monkeypatch.setattr(ServedModel, "score", scoring_then_arming)


def rejections(app, reason: str = "decode_budget") -> float:
    """How many requests ``app`` refused for ``reason``, as ``/metrics`` counts them."""
    registry = serving_state(app).metrics.registry
    return registry.get_sample_value("aiclassify_rejected_requests_total", {"reason": reason}) or 0.0


def cpu_seconds_of(call):
    """``call()``'s result and the CPU time of this thread it took (the test client serves the request
    in the calling thread)."""
    started = time.thread_time()
    result = call()
    return result, time.thread_time() - started


@pytest.fixture
def serve(tiny_run):
    """``serve(**settings)``: an app serving the tiny run as ``faces`` (or ``predictor``), closed after;
    no face search (these tests time decoding alone)."""
    apps = []

    def make(predictor: Predictor | None = None, **settings):
        config = {"background_loading": False, "face_detection": False, **settings}
        if predictor is None:
            app = create_app({"models": {"faces": str(tiny_run)}, **config})
        else:
            app = create_app(config, predictors={"faces": predictor})
        apps.append(app)
        return app

    yield make
    for app in apps:
        serving_state(app).registry.close()


# --- the clock and the reader --------------------------------------------------------------------


def test_the_clock_blames_an_image_alone_with_422_and_a_request_with_413():
    clock = DecodeClock(0.2)
    with clock.image(0):
        burn_cpu(0.25)
        with pytest.raises(ApiError) as alone:
            clock.check()
    assert alone.value.status == 422 and "this image alone" in alone.value.message

    clock = DecodeClock(0.2)
    with clock.image(0):
        burn_cpu(0.15)
        clock.check()
    with clock.image(1):
        burn_cpu(0.1)
        assert clock.spent_on(1) < 0.2 < clock.used_s()
        with pytest.raises(ApiError) as together:
            clock.check()
    assert together.value.status == 413 and "the request's images" in together.value.message
    assert "0.2 s" in together.value.message and together.value.reason == "decode_budget"


def test_the_clock_refuses_work_that_would_not_fit():
    clock = DecodeClock(1.0)
    with clock.image(0):
        burn_cpu(0.05)
        clock.check(upcoming_s=0.5)
        with pytest.raises(ApiError) as error:
            clock.check(upcoming_s=clock.spent_on_current() + 1.0)
    assert error.value.status == 422
    with pytest.raises(ValueError, match="positive"):
        DecodeClock(0)


def test_the_clock_leaves_out_paused_work():
    clock = DecodeClock(0.2)
    with clock.image(0):
        burn_cpu(0.05)
        with clock.paused():
            burn_cpu(0.3)  # work on pixels already decoded
        clock.check()
        assert clock.used_s() < 0.2 and clock.spent_on(0) < 0.2
        burn_cpu(0.2)
        with pytest.raises(ApiError) as error:
            clock.check()
    assert error.value.status == 422 and error.value.reason == "decode_budget"


def test_the_reader_hands_pillow_one_scan_at_a_time_and_checks_the_clock():
    data = many_scan_jpeg(200, 200, 40)
    scans = jpeg_scan_starts(data)
    reader = BudgetedReader(data, DecodeClock(60))
    reads = []
    checks = []
    reader.clock.check = lambda upcoming_s=0.0: checks.append(reader.tell())
    plain_read = reader.read

    def recording(size=-1):
        chunk = plain_read(size)
        reads.append(len(chunk))
        return chunk

    reader.read = recording
    with Image.open(reader) as image:
        reads.clear()
        reader.pace(scans)
        image.load()
        paced = np.asarray(image)
    assert len(reads) >= len(scans) and len(checks) > len(scans)
    assert sum(reads[: len(scans)]) == scans[-1]  # the first reads end at each scan start in turn
    with Image.open(io.BytesIO(data)) as image:
        np.testing.assert_array_equal(paced, np.asarray(image))


# --- before decoding -----------------------------------------------------------------------------


def test_a_jpeg_with_thousands_of_scans_is_refused_before_decoding(serve):
    app = serve()
    hostile = many_scan_jpeg(3000, 3000, 5000)  # over a minute of decoding, in 170 kB
    assert len(hostile) < 200_000 and len(jpeg_scan_starts(hostile)) == 5010
    response, cpu_s = cpu_seconds_of(lambda: post(app.test_client(), hostile))
    assert response.status_code == 422
    error = assert_matches_openapi(response, "/predict")["error"]
    assert "too many JPEG scans: 5010, limit 100" in error
    assert cpu_s < 0.5  # not decoded
    ordinary = encode(gradient((300, 200)), "JPEG", progressive=True)
    assert post(app.test_client(), ordinary).status_code == 200


def test_huge_but_legal_images_are_scored_and_too_many_pixels_in_a_request_is_413(serve):
    app = serve()
    huge = encode(Image.new("RGB", (6000, 6000), (90, 100, 110)), "PNG")  # 36 MP, within 40 MP
    assert len(huge) < 1_000_000
    response = post(app.test_client(), huge)
    [prediction] = assert_matches_openapi(response, "/predict")["predictions"]
    assert (prediction["width"], prediction["height"]) == (6000, 6000)
    response, cpu_s = cpu_seconds_of(lambda: post(app.test_client(), *[huge] * 6))  # 216 MP
    assert response.status_code == 413
    error = assert_matches_openapi(response, "/predict")["error"]
    assert "too many pixels in one request: 216000000 in all, limit 200000000" in error
    assert cpu_s < 0.5  # refused from the headers: decoding six would take seconds


# --- while decoding ------------------------------------------------------------------------------


def test_decoding_stops_when_the_budget_runs_out(serve):
    app = serve(max_jpeg_scans=UNLIMITED_SCANS, decode_budget_s=0.5)
    slow = many_scan_jpeg(1000, 1000, 4000)  # about 2.5 s for Pillow alone, then TensorFlow's decode
    response, cpu_s = cpu_seconds_of(lambda: post(app.test_client(), slow))
    assert response.status_code == 422
    error = assert_matches_openapi(response, "/predict")["error"]
    assert "decode budget exceeded: this image alone" in error and "0.5 s" in error
    assert cpu_s < 1.0  # stopped between two scans, not after the whole decode

    medium = many_scan_jpeg(600, 600, 600)  # about 0.1 s each
    response, cpu_s = cpu_seconds_of(lambda: post(app.test_client(), *[medium] * 12))
    assert response.status_code == 413
    error = assert_matches_openapi(response, "/predict")["error"]
    assert "decode budget exceeded: the request's images take more than 0.5 s" in error
    assert cpu_s < 1.0


def test_a_second_client_is_answered_while_a_hostile_request_is_refused(serve, monkeypatch):
    app = serve(max_jpeg_scans=UNLIMITED_SCANS, decode_budget_s=1.0)
    hostile = many_scan_jpeg(1000, 1000, 4000)
    held = HeldDecode(monkeypatch, hostile)
    result = {}
    send = lambda: result.update(response=post(app.test_client(), hostile))  # noqa: E731
    thread = threading.Thread(target=send, name="hostile-client")
    thread.start()
    assert held.decoding.wait(HOLD_S), "the hostile image was never decoded through the budget's reader"
    answers = [post(app.test_client(), image_bytes("JPEG", size=(48, 40))).status_code for _ in range(3)]
    held.release.set()
    thread.join(HOLD_S)
    assert answers == [200, 200, 200]
    assert held.released_in_time  # answered while the hostile request was held mid-decode, not after
    assert held.thread == "hostile-client"
    assert result["response"].status_code == 422
    assert "decode budget exceeded" in result["response"].get_json()["error"]


def test_a_slow_image_is_decoded_in_its_request_thread_not_in_the_batch(serve, tiny_run, monkeypatch):
    predictor = Predictor.load(tiny_run)
    prepared_in, scored, batch_cpu_s = [], [], []
    prepare, score_prepared = predictor.prepare, predictor.score_prepared

    def recording_prepare(images):
        prepared_in.append(threading.current_thread().name)
        return prepare(images)

    def recording_score(inputs):
        scored.extend(type(item) for item in inputs)
        scores, cpu_s = cpu_seconds_of(lambda: score_prepared(inputs))
        batch_cpu_s.append(cpu_s)
        return scores

    predictor.prepare, predictor.score_prepared = recording_prepare, recording_score
    app = serve(predictor, max_jpeg_scans=UNLIMITED_SCANS)
    slow = many_scan_jpeg(1000, 1000, 2000)  # accepted, but seconds of Pillow and TensorFlow decoding
    held = HeldDecode(monkeypatch, slow)
    result = {}

    def send_slow():
        result["response"], result["cpu_s"] = cpu_seconds_of(lambda: post(app.test_client(), slow))

    thread = threading.Thread(target=send_slow, name="slow-client")
    thread.start()
    assert held.decoding.wait(HOLD_S), "the slow image was never decoded through the budget's reader"
    answers = [post(app.test_client(), image_bytes("PNG", size=(40, 30))).status_code for _ in range(5)]
    held.release.set()
    thread.join(HOLD_S)
    assert answers == [200] * 5
    assert held.released_in_time and held.thread == "slow-client"  # the others never waited for it
    assert result["response"].status_code == 200
    assert result["cpu_s"] > 1.5  # decoded twice (Pillow, TensorFlow) in the slow request's own thread
    assert "slow-client" in prepared_in and not any(name.startswith("batcher") for name in prepared_in)
    assert max(batch_cpu_s) < 0.2  # the batch worker only ran the model...
    assert set(scored) == {PreparedPixels}  # ...on pixels, never on bytes to decode


# --- after scoring: the image warnings and the explanations --------------------------------------


def test_the_warnings_are_read_from_the_pixels_decoded_for_the_check(serve, monkeypatch):
    app = serve()
    decodes = []
    load = ImageFile.ImageFile.load

    def recording_load(image):
        if image.tile:  # not yet decoded
            decodes.append((image.format, type(image.fp).__name__))
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    transparent = Image.new("RGBA", (64, 48), (200, 30, 30, 0))
    transparent.paste((200, 30, 30, 255), (0, 0, 8, 8))
    grey = encode(gradient((64, 48), "L").convert("RGB"), "JPEG", quality=95)  # grey pixels, RGB mode
    body = assert_matches_openapi(post(app.test_client(), encode(transparent, "PNG"), grey), "/predict")
    codes = [{w["code"] for w in p["warnings"]} - {"demo_model"} for p in body["predictions"]]
    assert codes == [{"mostly_transparent"}, {"grayscale"}]  # both read from the pixels...
    assert decodes == [("PNG", "BudgetedReader"), ("JPEG", "BudgetedReader")]  # ...decoded once, budgeted


def test_a_budget_spent_on_the_warnings_is_refused_like_one_spent_decoding(serve, monkeypatch):
    app = serve(decode_budget_s=0.5)
    upload = image_bytes("PNG", size=(48, 40))
    slow = SlowDecodes(monkeypatch, 0.6)
    decoding = post(app.test_client(), upload)
    slow.armed = False
    warnings = predictor_module.image_warnings

    def slow_warnings(*args, **kwargs):
        burn_cpu(0.6)
        return warnings(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "image_warnings", slow_warnings)
    warning = post(app.test_client(), upload)
    assert decoding.status_code == warning.status_code == 422
    error = assert_matches_openapi(warning, "/predict")["error"]
    assert error == decoding.get_json()["error"] and "decode budget exceeded: this image alone" in error
    assert rejections(app) == 2


@pytest.mark.parametrize("slow_decoder", ["tensorflow", "pillow"])
def test_a_budget_spent_on_an_explanations_decodes_is_refused_like_one_spent_decoding(
    serve, monkeypatch, slow_decoder
):
    app = serve(decode_budget_s=0.5)
    upload = image_bytes("PNG", size=(48, 40))
    assert "explanation" in post(app.test_client(), upload, explain=True).get_json()["predictions"][0]
    first = SlowDecodes(monkeypatch, 0.6)  # Pillow's check of the upload is slow
    decoding = post(app.test_client(), upload, explain=True)
    first.armed = False
    formats = () if slow_decoder == "tensorflow" else ("PNG",)
    slow = SlowDecodes(monkeypatch, 0.6, formats, tensorflow=slow_decoder == "tensorflow")
    slow.arm_after_scoring()  # the first decodes are as usual: only the explanation's are slow
    explaining = post(app.test_client(), upload, explain=True)
    assert decoding.status_code == explaining.status_code == 422
    error = assert_matches_openapi(explaining, "/predict")["error"]
    assert error == decoding.get_json()["error"] and "decode budget exceeded: this image alone" in error
    assert rejections(app) == 2
    assert serving_state(app).explanation_slots.active == 0  # the refused explanation freed its slot
    monkeypatch.undo()  # decodes as usual again
    assert "explanation" in post(app.test_client(), upload, explain=True).get_json()["predictions"][0]


def test_an_explanations_gradients_and_blend_are_not_charged_to_the_budget(serve, monkeypatch):
    app = serve(decode_budget_s=0.5)
    for name in ("grad_cam_of_input", "blend_overlay"):
        plain = getattr(explanations, name)

        def slow(*args, plain=plain, **kwargs):
            burn_cpu(0.3)  # 0.6 s in all, on pixels already decoded
            return plain(*args, **kwargs)

        monkeypatch.setattr(explanations, name, slow)
    response = post(app.test_client(), image_bytes("PNG", size=(48, 40)), explain=True)
    assert "explanation" in assert_matches_openapi(response, "/predict")["predictions"][0]


# --- WebP: one uninterruptible decode, estimated first -------------------------------------------


def webp(size: tuple[int, int] = (1000, 1000), frames: int = 1) -> bytes:
    """A lossy WebP of ``size`` (an animation of ``frames`` frames when more than one)."""
    images = [Image.new("RGB", size, (90, 100 + 5 * i, 110)) for i in range(frames)]
    if frames == 1:
        return encode(images[0], "WEBP", quality=80)
    return encode(images[0], "WEBP", quality=80, save_all=True, append_images=images[1:], duration=40)


@pytest.fixture
def webp_decodes(monkeypatch):
    """``rates(per_pixel_s, per_byte_s)`` fixes the WebP rates; the list counts libwebp's frame decodes."""
    decodes = []
    get_next = WebPImagePlugin.WebPImageFile._get_next

    def counting(image):
        decodes.append(image.size)
        return get_next(image)

    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "_get_next", counting)

    def rates(per_pixel_s: float, per_byte_s: float = 0.0) -> list:
        monkeypatch.setattr(webp_cost, "measured_rates", lambda: WebPRates(per_pixel_s, per_byte_s))
        return decodes

    return rates


def test_a_webp_is_not_decoded_when_its_estimate_overruns_the_budget(serve, webp_decodes):
    app = serve(decode_budget_s=0.5)
    decodes = webp_decodes(1e-6)  # a megapixel: an estimated second
    response = post(app.test_client(), webp())
    assert response.status_code == 422 and decodes == []  # refused before libwebp's call
    error = assert_matches_openapi(response, "/predict")["error"]
    assert "decode budget exceeded: this image alone takes more than the 0.5 s" in error
    assert rejections(app) == 1
    webp_decodes(0.2e-6)  # 0.2 s: within the budget
    [prediction] = assert_matches_openapi(post(app.test_client(), webp()), "/predict")["predictions"]
    assert prediction["format"] == "WEBP" and decodes == [(1000, 1000)]


def test_a_webp_is_not_decoded_when_the_rest_of_the_budget_is_too_little(serve, monkeypatch, webp_decodes):
    app = serve(decode_budget_s=0.5)
    decodes = webp_decodes(0.3e-6)  # 0.3 s: fits the budget alone...
    SlowDecodes(monkeypatch, 0.3, formats=("JPEG",))  # ...but not after a JPEG that took 0.3 s
    response = post(app.test_client(), image_bytes("JPEG"), webp())
    assert response.status_code == 413 and decodes == []
    error = assert_matches_openapi(response, "/predict")["error"]
    assert error.startswith("image 1 (image1.jpg): decode budget exceeded: the request's images")


def test_an_animated_webp_is_decoded_once_its_first_frame(serve, webp_decodes):
    app = serve()
    decodes = webp_decodes(1e-9)
    animation = webp((600, 400), frames=20)
    response = post(app.test_client(), animation)
    [prediction] = assert_matches_openapi(response, "/predict")["predictions"]
    assert (prediction["format"], prediction["converted"]) == ("WEBP", True)  # its first frame, as PNG
    assert decodes == [(600, 400)]  # one frame, once: the warnings read the same decoded frame


# --- after a timeout ------------------------------------------------------------------------------


def test_a_timed_out_request_leaves_no_work_behind(serve):
    scored: list[bytes] = []
    worker_busy, release = threading.Event(), threading.Event()

    def blocking_score(images: list[bytes]) -> list[float]:
        scored.extend(images)
        if worker_busy.is_set():  # after the warm-up call: hold the worker until released
            release.wait(10)
        return [0.5] * len(images)

    app = serve(Predictor(blocking_score, {"threshold": 0.5}), request_timeout_s=0.5, max_batch_wait_ms=0)
    first, second, third = (image_bytes(size=(20 + i, 20)) for i in range(3))
    worker_busy.set()
    blocked = threading.Thread(target=lambda: post(app.test_client(), first))
    blocked.start()
    deadline = time.monotonic() + 5
    while first not in scored and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first in scored  # the worker is busy with it
    response = post(app.test_client(), second, third)
    assert response.status_code == 503 and "did not answer within 0.5 s" in response.get_json()["error"]
    release.set()
    blocked.join(10)
    batcher = serving_state(app).registry.models["faces"].batcher
    deadline = time.monotonic() + 5
    while batcher._in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher._in_flight == 0
    assert second not in scored and third not in scored  # cancelled: never scored after the 503


# --- settings ------------------------------------------------------------------------------------


def test_the_budget_settings_come_from_the_environment():
    settings = load_settings(
        environ={
            "AICLASSIFY_MAX_JPEG_SCANS": "50",
            "AICLASSIFY_MAX_REQUEST_PIXELS": "90000000",
            "AICLASSIFY_DECODE_BUDGET_S": "2.5",
        }
    )
    assert (settings.max_jpeg_scans, settings.max_request_pixels, settings.decode_budget_s) == (50, 90e6, 2.5)
    defaults = load_settings(environ={})
    assert (defaults.max_jpeg_scans, defaults.max_request_pixels, defaults.decode_budget_s) == (100, 2e8, 10)
    for bad in (
        {"AICLASSIFY_MAX_JPEG_SCANS": "0"},
        {"AICLASSIFY_DECODE_BUDGET_S": "0"},
        {"AICLASSIFY_MAX_REQUEST_PIXELS": "1000"},  # less than one image of the largest size
    ):
        with pytest.raises(SettingsError):
            load_settings(environ=bad)
