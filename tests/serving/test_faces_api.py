"""The face path of the API: model=auto, model=faces, /v1/faces, /readyz, and the per-image warnings."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from builders import FakeDetector, FakePredictor, assert_matches_openapi, encode, gradient
from PIL import Image

from aiclassify.serving.app import create_app
from aiclassify.serving.decode_budget import DecodeClock
from aiclassify.serving.errors import ApiError
from aiclassify.serving.state import serving_state


def post(client, *images: bytes, **parameters):
    files = [(io.BytesIO(image), f"photo{i}.png") for i, image in enumerate(images)]
    return client.post("/predict", data={"file": files, **parameters}, content_type="multipart/form-data")


def make_app(detector=None, models=("faces", "general"), **settings):
    predictors = {name: FakePredictor() for name in models}
    config = {"background_loading": False, "max_batch_wait_ms": 0, **settings}
    return create_app(config, predictors=predictors, face_detector=detector or FakeDetector())


@pytest.fixture
def client(fake_app):
    return fake_app.test_client()


def test_auto_scores_the_image_with_the_general_model_and_each_face_with_the_face_model(fake_app, client):
    photo = encode(gradient((300, 200)))
    body = assert_matches_openapi(post(client, photo, model="auto"), "/predict")
    assert body["model"]["name"] == "general" and body["face_model"]["name"] == "faces"
    [prediction] = body["predictions"]
    assert prediction["model"]["name"] == "general" and prediction["timing_ms"]["face_detection"] > 0
    faces = prediction["faces"]
    assert [face["index"] for face in faces] == [0, 1]
    assert [face["box"] for face in faces] == [[50, 50, 100, 100], [150, 50, 100, 100]]  # left to right
    assert all(face["model"] == {"name": "faces", "version": "1"} for face in faces)
    registry = serving_state(fake_app).registry
    face_predictor = registry.models["faces"].predictor
    for face in faces:  # each crop went through the face model's own scoring, at its threshold
        assert face["threshold"] == face_predictor.default_threshold
        assert face["label"] == ("ai-generated" if face["probability_ai"] >= face["threshold"] else "real")
        assert face["detector_confidence"] in (0.99, 0.98)
        assert set(face["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert "no_face" not in {w["code"] for w in prediction["warnings"]}


def test_face_scores_never_change_the_whole_image_verdict(client):
    photo = encode(gradient((300, 200)))
    general = post(client, photo, model="general").get_json()["predictions"][0]
    auto = post(client, photo, model="auto").get_json()["predictions"][0]
    assert general["faces"] is None
    for key in ("verdict", "label", "probability_ai", "threshold", "warnings", "evidence"):
        assert auto[key] == general[key]


def test_model_general_is_unchanged_and_searches_no_face(fake_app, client):
    detector = serving_state(fake_app).faces.finder.detector
    searched = len(detector.searched)
    body = assert_matches_openapi(post(client, encode(gradient((300, 200))), model="general"), "/predict")
    assert body["face_model"] is None and body["predictions"][0]["faces"] is None
    assert body["predictions"][0]["timing_ms"]["face_detection"] is None
    assert len(detector.searched) == searched


def test_model_faces_on_an_image_without_a_face_says_so(client):
    small = encode(gradient((48, 40)))  # the fake detector finds no face under 64 px
    body = assert_matches_openapi(post(client, small, model="faces"), "/predict")
    [prediction] = body["predictions"]
    assert prediction["faces"] == [] and body["face_model"]["name"] == "faces"
    no_face = [w for w in prediction["warnings"] if w["code"] == "no_face"]
    assert len(no_face) == 1 and "face model" in no_face[0]["message"]


def test_auto_on_an_image_without_a_face_gives_the_general_verdict_alone(client):
    body = assert_matches_openapi(post(client, encode(gradient((48, 40))), model="auto"), "/predict")
    [prediction] = body["predictions"]
    assert prediction["faces"] == [] and "no_face" not in {w["code"] for w in prediction["warnings"]}


def test_a_detector_failure_on_one_image_is_a_warning_on_that_image():
    app = make_app(FakeDetector(fail_on_width=300))
    images = [encode(gradient((300, 200))), encode(gradient((200, 300)))]
    response = post(app.test_client(), *images, model="auto")
    body = assert_matches_openapi(response, "/predict")
    failed, fine = body["predictions"]
    assert failed["faces"] is None and fine["faces"] and len(fine["faces"]) == 2
    [warning] = [w for w in failed["warnings"] if w["code"] == "face_detection_failed"]
    assert "fake failure on a 300x200 image" in warning["message"]
    assert failed["verdict"] in ("ai-generated", "real", "inconclusive")


def test_boxes_are_in_the_upright_image_of_an_exif_rotated_photo():
    detector = FakeDetector(count=1)
    app = make_app(detector)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show: stored 300x200, shown 200x300
    photo = encode(gradient((300, 200)), "JPEG", exif=exif)
    body = assert_matches_openapi(post(app.test_client(), photo, model="auto"), "/predict")
    [prediction] = body["predictions"]
    assert detector.searched[-1] == (200, 300)
    assert (prediction["width"], prediction["height"]) == (300, 200)  # as stored
    x, y, width, height = prediction["faces"][0]["box"]
    assert x + width <= 200 and y + height <= 300


def test_auto_is_a_404_without_both_models_and_a_503_while_the_detector_loads():
    only_general = make_app(models=("general",))
    response = post(only_general.test_client(), encode(gradient((300, 200))), model="auto")
    assert response.status_code == 404 and "this server lacks 'faces'" in response.get_json()["error"]
    disabled = make_app(face_detection=False)
    response = post(disabled.test_client(), encode(gradient((300, 200))), model="auto")
    assert response.status_code == 404 and "AICLASSIFY_FACE_DETECTION" in response.get_json()["error"]
    plain = post(disabled.test_client(), encode(gradient((300, 200))), model="faces").get_json()
    assert plain["predictions"][0]["faces"] is None  # detection off: model=faces as before
    loading = make_app()
    serving_state(loading).faces.state = "LOADING"
    response = post(loading.test_client(), encode(gradient((300, 200))), model="auto")
    assert response.status_code == 503 and "face detector is not loaded" in response.get_json()["error"]


def test_an_operating_point_the_face_model_lacks_is_a_422_naming_it():
    points = [{"name": "fpr_1pct", "target_fpr": 0.01, "threshold": 0.7}]
    predictors = {
        "faces": FakePredictor(),
        "general": FakePredictor(calibration={"operating_points": points}),
    }
    app = create_app({"background_loading": False}, predictors=predictors, face_detector=FakeDetector())
    response = post(app.test_client(), encode(gradient((300, 200))), model="auto", operating_point="fpr_1pct")
    assert response.status_code == 422 and "model 'faces'" in response.get_json()["error"]
    response = post(
        app.test_client(), encode(gradient((300, 200))), model="general", operating_point="fpr_1pct"
    )
    assert response.status_code == 200


def test_faces_info_and_readyz_report_the_detector(client):
    info = assert_matches_openapi(client.get("/v1/faces"), "/v1/faces", "get")
    assert info["available"] is True and info["note"] is None
    assert info["detector"]["state"] == "AVAILABLE" and info["detector"]["max_faces"] == 20
    assert info["detector"]["crop"] == "aligned" and info["detector"]["crop_size"] == 256
    ready = assert_matches_openapi(client.get("/readyz"), "/readyz", "get")
    assert ready["ready"] is True and ready["face_detector"] == {"state": "AVAILABLE", "error": None}


def test_a_detector_that_fails_to_load_makes_the_server_not_ready():
    class Broken(FakeDetector):
        def detect(self, image):
            raise RuntimeError("no weights")

    app = make_app(Broken())
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["face_detector"]["state"] == "END"
    assert app.test_client().get("/v1/faces").get_json()["available"] is False
    response = post(app.test_client(), encode(gradient((300, 200))), model="general")
    assert response.status_code == 200  # the other models still answer


def test_a_model_called_auto_is_refused_at_start_up():
    with pytest.raises(ValueError, match="no model may be called 'auto'"):
        create_app({"background_loading": False}, predictors={"auto": FakePredictor()})


def test_face_settings_are_checked():
    bad_settings = (
        {"max_faces": 0},
        {"min_face_confidence": 1.5},
        {"face_model": "general"},
        {"max_concurrent_face_searches": 0},
        {"face_search_wait_s": -1},
    )
    for bad in bad_settings:
        with pytest.raises(ValueError):
            make_app(**bad)


def test_face_detection_is_timed_on_metrics(fake_app, client):
    post(client, encode(gradient((300, 200))), model="auto")
    text = client.get("/metrics").get_data(as_text=True)
    scored = [line for line in text.splitlines() if line.startswith("aiclassify_faces_scored_total")]
    assert scored and float(scored[0].split()[-1]) >= 2
    assert "aiclassify_face_detection_seconds_count" in text


def test_a_small_face_is_warned(client):
    photo = encode(Image.fromarray(np.full((70, 200, 3), 120, np.uint8)))
    [face, _] = post(client, photo, model="auto").get_json()["predictions"][0]["faces"]
    assert face["box"][2] == 35 and "small_face" in {w["code"] for w in face["warnings"]}


def test_a_search_that_would_overrun_the_decode_budget_is_skipped_with_a_warning(fake_app):
    class SpentClock(DecodeClock):
        def check(self, upcoming_s: float = 0.0) -> None:
            raise ApiError(413, "decode budget exceeded", reason="decode_budget")

    state = serving_state(fake_app)
    face_model = state.registry.get("faces")
    [found] = state.faces.score_faces(
        face_model, [encode(gradient((300, 200)))], None, None, False, 5, SpentClock(1)
    )
    assert found.verdicts is None and found.search.crops is None
    [warning] = found.search.warnings
    assert warning.code == "face_detection_failed" and "decode budget exceeded" in warning.message


def test_an_image_over_the_concurrent_search_limit_waits_then_is_not_searched():
    class Blocking(FakeDetector):
        def __init__(self):
            super().__init__(count=1)
            self.entered, self.release = threading.Event(), threading.Event()

        def detect(self, image):
            if len(self.searched) >= 1:  # after the warm-up search
                self.entered.set()
                self.release.wait(10)
            return super().detect(image)

    detector = Blocking()
    app = make_app(detector, max_concurrent_face_searches=1, face_search_wait_s=0.2)
    photo = encode(gradient((300, 200)))
    first = {}
    thread = threading.Thread(
        target=lambda: first.update(response=post(app.test_client(), photo, model="auto"))
    )
    thread.start()
    assert detector.entered.wait(10)
    body = assert_matches_openapi(post(app.test_client(), photo, model="auto"), "/predict")
    [prediction] = body["predictions"]
    assert prediction["faces"] is None and prediction["verdict"] in ("ai-generated", "real", "inconclusive")
    [warning] = [w for w in prediction["warnings"] if w["code"] == "face_detection_failed"]
    assert "busy with 1 other search(es) for 0.2 s" in warning["message"]
    detector.release.set()
    thread.join(10)
    assert len(first["response"].get_json()["predictions"][0]["faces"]) == 1
