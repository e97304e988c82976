"""The decode budget: costly uploads are refused before or while decoding, outside the model's batch."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from builders import assert_matches_openapi, encode, gradient, image_bytes, many_scan_jpeg
from PIL import Image

from aiclassify.predict import Predictor
from aiclassify.predict.crops import PreparedPixels
from aiclassify.serving.app import create_app
from aiclassify.serving.decode_budget import BudgetedReader, DecodeClock
from aiclassify.serving.errors import ApiError
from aiclassify.serving.image_structure import jpeg_scan_starts
from aiclassify.serving.settings import SettingsError, load_settings
from aiclassify.serving.state import serving_state

UNLIMITED_SCANS = 1_000_000  # lets a many-scan JPEG through to the decode budget


def post(client, *images: bytes):
    files = [(io.BytesIO(data), f"image{index}.jpg") for index, data in enumerate(images)]
    return client.post("/predict", data={"file": files}, content_type="multipart/form-data")


def burn_cpu(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


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


def test_a_second_client_is_answered_while_a_hostile_request_is_refused(serve):
    app = serve(max_jpeg_scans=UNLIMITED_SCANS, decode_budget_s=1.0)
    hostile = many_scan_jpeg(1000, 1000, 4000)
    result = {}

    def send_hostile():
        started = time.perf_counter()
        result["response"] = post(app.test_client(), hostile)
        result["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=send_hostile)
    thread.start()
    latencies = []
    while thread.is_alive() or not latencies:
        started = time.perf_counter()
        assert post(app.test_client(), image_bytes("JPEG", size=(48, 40))).status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    thread.join()
    assert result["response"].status_code == 422
    assert "decode budget exceeded" in result["response"].get_json()["error"]
    assert len(latencies) >= 3 and max(latencies) < 1.0


def test_a_slow_image_is_decoded_in_its_request_thread_not_in_the_batch(serve, tiny_run):
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
    result = {}

    def send_slow():
        result["response"], result["cpu_s"] = cpu_seconds_of(lambda: post(app.test_client(), slow))

    thread = threading.Thread(target=send_slow, name="slow-client")
    thread.start()
    latencies = []
    while thread.is_alive() or not latencies:
        started = time.perf_counter()
        assert post(app.test_client(), image_bytes("PNG", size=(40, 30))).status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    thread.join()
    assert result["response"].status_code == 200
    assert result["cpu_s"] > 1.5  # decoded twice (Pillow, TensorFlow) in the slow request's own thread
    assert "slow-client" in prepared_in and not any(name.startswith("batcher") for name in prepared_in)
    assert max(batch_cpu_s) < 0.2  # the batch worker only ran the model...
    assert set(scored) == {PreparedPixels}  # ...on pixels, never on bytes to decode
    assert len(latencies) >= 5 and max(latencies) < 1.0  # so the other client never waited for it


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
