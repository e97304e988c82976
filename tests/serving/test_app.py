"""The Flask inference API through Flask's test client, with small real models and fakes."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from builders import (
    FakePredictor,
    animated,
    assert_matches_openapi,
    encode,
    exif_rotated_jpeg,
    gif_with_size,
    gradient,
    image_bytes,
    jpeg_with_size,
    noise_image,
    openapi_document,
    png_with_size,
    sixteen_bit_png,
    truncated,
)
from conftest import CALIBRATION, REPO
from PIL import Image

from aiclassify.predict import Predictor
from aiclassify.predict.diagnostics import WARNING_CODES
from aiclassify.predict.faces import FACE_WARNING_CODES
from aiclassify.serving.app import create_app
from aiclassify.serving.batching import BatchQueue
from aiclassify.serving.settings import SettingsError, default_models, load_settings
from aiclassify.serving.state import serving_state


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def app(api_models):
    """Two real tiny models: ``faces`` (plain run) and ``general`` (calibrated, with operating points)."""
    application = create_app(
        {
            "models": api_models,
            "background_loading": False,
            "max_batch_wait_ms": 1,
            "max_upload_mb": 1,
        },
    )
    yield application
    serving_state(application).registry.close()


@pytest.fixture
def client(app):
    return app.test_client()


def post_files(client, *files, url="/predict", field="file"):
    """POST images as multipart ``field`` entries (each a bytes or a (bytes, filename) pair)."""
    pairs = [(f, "upload.png") if isinstance(f, bytes) else f for f in files]
    entries = [(io.BytesIO(data), name) for data, name in pairs]
    return client.post(url, data={field: entries}, content_type="multipart/form-data")


@pytest.fixture(scope="module")
def raw_probability(tiny_run):
    """``raw_probability(data)``: what the run's own Predictor says for these bytes."""
    predictor = Predictor.load(tiny_run)
    return lambda data: predictor.probabilities([data])[0]


# --- documentation and health -------------------------------------------------------------------


def test_openapi_document_is_valid_and_served(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document == openapi_document()
    assert document["openapi"].startswith("3.1")
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for path in (
        "/predict",
        "/healthz",
        "/readyz",
        "/v1/models/{name}",
        "/v1/models/{name}/metadata",
        "/v1/models/{name}:predict",
    ):
        assert path in document["paths"]


def test_openapi_document_lists_every_route(app):
    document = openapi_document()
    assert document["openapi"].startswith("3.")
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            served |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert documented == served and len(served) == 12  # eleven JSON operations and /metrics
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "200" in operation["responses"] and operation["summary"]
            assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    predict = document["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "image/*" in predict["description"]  # the raw body spectree cannot declare
    assert {p["name"] for p in predict["parameters"]} == {"model", "target_fpr", "operating_point", "explain"}
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
    }
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert document["paths"][path]["get"]["security"] == []  # never need the key


def test_serving_uses_only_public_werkzeug_api():
    import aiclassify.serving

    sources = {path.name: path.read_text() for path in Path(aiclassify.serving.__file__).parent.glob("*.py")}
    assert "multipart.py" not in sources and "openapi.py" not in sources
    for name, text in sources.items():
        assert "werkzeug.sansio" not in text and "formparser" not in text, name
        for line in re.findall(r"^\s*(?:from|import)\s+werkzeug.*$", text, re.MULTILINE):
            assert not re.search(r"\b_\w", line), (name, line)  # no private names


def test_health_and_ready(client):
    assert assert_matches_openapi(client.get("/healthz"), "/healthz", "get") == {"status": "ok"}
    body = assert_matches_openapi(client.get("/readyz"), "/readyz", "get")
    assert body["ready"] is True
    assert set(body["models"]) == {"faces", "general"}


def test_not_ready_while_loading_then_ready():
    predictor = FakePredictor()
    predictor.release.clear()  # the warm-up call blocks until released
    app = create_app({"background_loading": True}, predictors={"slow": predictor})
    client = app.test_client()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert assert_matches_openapi(response, "/readyz", "get")["models"]["slow"]["state"] == "LOADING"
        response = post_files(client, image_bytes())
        assert response.status_code == 503
        assert "not loaded" in assert_matches_openapi(response, "/predict")["error"]
        assert client.get("/healthz").status_code == 200
        predictor.release.set()
        assert serving_state(app).registry.wait_until_loaded(10)
        assert client.get("/readyz").status_code == 200
    finally:
        predictor.release.set()
        serving_state(app).registry.close()


def test_model_that_failed_to_load_is_503_and_not_ready(tiny_run, tmp_path):
    app = create_app({"models": f"good={tiny_run},broken={tmp_path}/missing", "background_loading": False})
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 503
        response = post_files(client, image_bytes(), url="/predict?model=broken")
        assert response.status_code == 503
        assert "broken" in assert_matches_openapi(response, "/predict")["error"]
        assert post_files(client, image_bytes(), url="/predict?model=good").status_code == 200
        status = assert_matches_openapi(client.get("/v1/models/broken"), "/v1/models/{name}", "get")
        assert status["model_version_status"][0]["state"] == "END"
        assert status["model_version_status"][0]["status"]["error_code"] != "OK"
    finally:
        serving_state(app).registry.close()


@pytest.mark.parametrize("api_key", ["", "s3cret"])
def test_readyz_shows_load_errors_only_to_a_caller_with_the_key(tmp_path, api_key):
    broken = tmp_path / "private" / "missing-model"
    config = {"models": f"broken={broken}", "api_key": api_key, "background_loading": False}
    app = create_app(config, predictors={"fake": FakePredictor()})
    client = app.test_client()
    try:
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": api_key}):
            response = client.get("/readyz", headers=headers)
            body = assert_matches_openapi(response, "/readyz", "get")
            assert response.status_code == 503 and body["models"]["broken"]["state"] == "END"
            shown = body["models"]["broken"]["error"]
            if api_key and headers.get("X-API-Key") == api_key:
                assert shown and "missing-model" in shown
            else:
                assert shown is None and str(tmp_path) not in response.get_data(as_text=True)
    finally:
        serving_state(app).registry.close()


# --- /predict -------------------------------------------------------------------------------------


def test_predict_one_file_matches_the_run_predictor(client, raw_probability):
    data = image_bytes("JPEG", size=(64, 48))
    body = assert_matches_openapi(post_files(client, (data, "cat.jpg")), "/predict")
    [prediction] = body["predictions"]
    assert body["model"]["name"] == "faces" and body["model"]["run"] == "run"
    assert prediction["filename"] == "cat.jpg"
    assert (prediction["width"], prediction["height"], prediction["format"]) == (64, 48, "JPEG")
    assert prediction["converted"] is False
    assert prediction["probability_ai"] == pytest.approx(raw_probability(data), abs=1e-6)
    assert prediction["threshold"] == 0.5 and prediction["operating_point"] is None
    expected = "ai-generated" if prediction["probability_ai"] >= 0.5 else "real"
    assert prediction["label"] == expected
    assert prediction["model"]["version"] == body["model"]["version"]


def test_predict_several_files_in_order(client):
    images = [image_bytes(fmt, size=(30 + 5 * i, 30)) for i, fmt in enumerate(["PNG", "JPEG", "BMP", "WEBP"])]
    response = client.post(
        "/predict",
        content_type="multipart/form-data",
        data={
            "file": [(io.BytesIO(images[0]), "a.png"), (io.BytesIO(images[1]), "b.jpg")],
            "files": [(io.BytesIO(images[2]), "c.bmp"), (io.BytesIO(images[3]), "d.webp")],
        },
    )
    body = assert_matches_openapi(response, "/predict")
    assert [p["filename"] for p in body["predictions"]] == ["a.png", "b.jpg", "c.bmp", "d.webp"]
    assert [p["format"] for p in body["predictions"]] == ["PNG", "JPEG", "BMP", "WEBP"]
    assert [p["width"] for p in body["predictions"]] == [30, 35, 40, 45]


def test_predict_json_base64_and_raw_body(client):
    data = image_bytes()
    response = client.post("/predict", json={"images": [{"b64": b64(data)}]})
    from_json = assert_matches_openapi(response, "/predict")
    from_raw = assert_matches_openapi(
        client.post("/predict", data=data, content_type="image/png"), "/predict"
    )
    assert from_json["predictions"][0]["probability_ai"] == from_raw["predictions"][0]["probability_ai"]
    assert from_json["predictions"][0]["filename"] is None


def test_model_selection_and_calibration(client, raw_probability):
    data = image_bytes("JPEG")
    raw = raw_probability(data)
    body = assert_matches_openapi(post_files(client, data, url="/predict?model=general"), "/predict")
    [prediction] = body["predictions"]
    calibrated = 1 / (1 + math.exp(-math.log(raw / (1 - raw)) / CALIBRATION["temperature"]))
    assert body["model"]["name"] == "general" and body["model"]["temperature"] == 2.0
    assert prediction["probability_ai"] == pytest.approx(calibrated, abs=1e-6)
    assert prediction["probability_ai_uncalibrated"] == pytest.approx(raw, abs=1e-6)
    assert prediction["threshold"] == pytest.approx(0.5)  # 0.5 stays 0.5 under temperature scaling


@pytest.mark.parametrize(
    ("query", "threshold", "point"),
    [
        ("target_fpr=0.01", 0.9, "fpr_1pct"),
        ("target_fpr=0.05", 0.7, "fpr_5pct"),
        ("operating_point=balanced", 0.3, "balanced"),
    ],
)
def test_operating_points(client, query, threshold, point):
    body = assert_matches_openapi(
        post_files(client, image_bytes(), url=f"/predict?model=general&{query}"), "/predict"
    )
    [prediction] = body["predictions"]
    assert (prediction["threshold"], prediction["operating_point"]) == (threshold, point)
    assert prediction["label"] == ("ai-generated" if prediction["probability_ai"] >= threshold else "real")


def test_operating_points_at_the_edges():
    points = [
        {"name": "fpr_1pct", "target_fpr": 0.01, "threshold": math.nextafter(1.0, 2.0)},
        {"name": "fpr_5pct", "target_fpr": 0.05, "threshold": float("nan")},
    ]
    app = create_app(
        {"background_loading": False},
        predictors={"fake": FakePredictor(calibration={"operating_points": points})},
    )
    client = app.test_client()
    try:
        response = post_files(client, image_bytes(), url="/predict?target_fpr=0.01")
        body = assert_matches_openapi(response, "/predict")
        assert body["predictions"][0]["label"] == "real"  # a threshold above 1 flags nothing
        assert post_files(client, image_bytes(), url="/predict?target_fpr=0.05").status_code == 422
    finally:
        serving_state(app).registry.close()


def test_target_fpr_in_form_and_json(client):
    response = client.post(
        "/predict",
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(image_bytes()), "a.png"), "model": "general", "target_fpr": "0.01"},
    )
    assert assert_matches_openapi(response, "/predict")["predictions"][0]["threshold"] == 0.9
    response = client.post(
        "/predict", json={"images": [{"b64": b64(image_bytes())}], "model": "general", "target_fpr": 0.05}
    )
    assert assert_matches_openapi(response, "/predict")["predictions"][0]["threshold"] == 0.7


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("model=faces&target_fpr=0.01", 422, "no stored operating points"),
        ("model=general&target_fpr=0.02", 422, "available"),
        ("model=general&operating_point=nope", 422, "available"),
        ("model=general&target_fpr=abc", 400, "number"),
        ("model=general&target_fpr=2", 400, "between"),
        ("model=nope", 404, "unknown model"),
    ],
)
def test_bad_parameters(client, query, status, words):
    response = post_files(client, image_bytes(), url=f"/predict?{query}")
    assert response.status_code == status
    assert words in assert_matches_openapi(response, "/predict")["error"]


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"query_string": "target_fpr=abc"}, "target_fpr must be a number, not 'abc'"),
        ({"query_string": "target_fpr=2"}, "target_fpr must be between 0 and 1, not 2"),
        ({"query_string": "target_fpr=nan"}, "target_fpr must be between 0 and 1"),
        ({"query_string": "explain=maybe"}, "explain must be true or false, not 'maybe'"),
        ({"query_string": "model=a&model=b"}, "model must be given once, as one value, not ['a', 'b']"),
        (
            {
                "data": {"file": (io.BytesIO(image_bytes()), "a.png"), "target_fpr": "abc"},
                "content_type": "multipart/form-data",
            },
            "target_fpr must be a number, not 'abc'",
        ),
        (
            {"data": {"file": "not a file"}, "content_type": "multipart/form-data"},
            "file[0] must be an uploaded file",
        ),
        (
            {"json": {"images": [{"b64": b64(image_bytes())}], "target_fpr": "abc"}},
            "target_fpr must be a number, not 'abc'",
        ),
        (
            {"json": {"images": [{"b64": b64(image_bytes())}], "model": 3}},
            "model: Input should be a valid string",
        ),
        ({"json": {"images": [{"data": "x"}]}}, "images[0].b64: Field required"),
    ],
)
def test_a_bad_parameter_is_400_naming_it(client, request_kwargs, message):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == 400
    body = assert_matches_openapi(response, "/predict")
    assert list(body) == ["error"] and message in body["error"]


def test_raw_image_bodies_are_not_json_validated(client):
    for content_type in ("image/png", "application/octet-stream"):
        response = client.post(
            "/predict?model=general&target_fpr=0.01", data=image_bytes(), content_type=content_type
        )
        assert assert_matches_openapi(response, "/predict")["predictions"][0]["threshold"] == 0.9


def test_tf_serving_body_is_json_whatever_its_content_type(client):
    body = json.dumps({"instances": [{"b64": b64(image_bytes())}]})
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):  # curl -d sends the first
        response = client.post("/v1/models/faces:predict", data=body, content_type=content_type)
        assert len(assert_matches_openapi(response, "/v1/models/{name}:predict")["predictions"]) == 1
    response = client.post(
        "/v1/models/faces:predict", data='{"instances": [{"b64": 1}]}', content_type="text/plain"
    )
    assert response.status_code == 400
    assert "instances[0]" in assert_matches_openapi(response, "/v1/models/{name}:predict")["error"]


def test_response_validation_lets_edge_values_through(caplog):
    def extremes(images):
        return [0.0 if len(image) % 2 else 1.0 for image in images]

    predictor = Predictor(extremes, {"threshold": 0.5})  # no run name, architecture or calibration
    app = create_app({"background_loading": False}, predictors={"edge": predictor})
    try:
        client = app.test_client()
        with caplog.at_level(logging.ERROR, logger="aiclassify.serving"):
            files = [(image_bytes(size=(20 + i, 20)), name) for i, name in enumerate(["фото 1.png", "b.png"])]
            response = post_files(client, *files, url="/predict?explain=false")
            body = assert_matches_openapi(response, "/predict")
            assert sorted(p["probability_ai"] for p in body["predictions"]) == [0.0, 1.0]
            assert body["model"]["run"] is None and body["model"]["architecture"] is None
            metadata = client.get("/v1/models/edge/metadata")
            section = assert_matches_openapi(metadata, "/v1/models/{name}/metadata", "get")["metadata"][
                "aiclassify"
            ]
            assert section["calibration_source"] is None and section["operating_points"] == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        serving_state(app).registry.close()


def test_an_answer_against_its_own_schema_is_a_logged_500(caplog):
    predictor = Predictor(lambda images: [0.5] * len(images), {"name": 7})  # run must be a string or null
    app = create_app({"background_loading": False}, predictors={"odd": predictor})
    try:
        with caplog.at_level(logging.ERROR, logger="aiclassify.serving"):
            response = post_files(app.test_client(), image_bytes())
        assert response.status_code == 500
        assert "internal server error" in assert_matches_openapi(response, "/predict")["error"]
        assert any("model.run" in (r.exc_text or "") for r in caplog.records if r.levelno == logging.ERROR)
    finally:
        serving_state(app).registry.close()


# --- verdicts, the inconclusive band and warnings ---------------------------------------------------

BAND = {
    "lower": 0.2,
    "upper": 0.8,
    "target_fpr": 0.03,
    "confidence": 0.95,
    "notes": ["nothing is called real: 40 AI-generated validation images bound the error rate only to 7.2%"],
    "empty": False,
    "validation": {"coverage": 0.9, "confident_accuracy": 0.98, "fpr": 0.03, "recall": 0.85, "fnr": 0.02},
}


def red_score(images: list[bytes]) -> list[float]:
    """A model whose P(AI-generated) is the red value of the first pixel / 255."""
    return [Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))[0] / 255 for data in images]


@pytest.fixture
def banded_client():
    """One model with a stored band (0.2-0.8), a 32x32 input and demo metadata."""
    predictor = Predictor(
        red_score,
        {"name": "banded", "model": "fake", "threshold": 0.5, "image_size": 32, "demo": True},
        {"temperature": 1.0, "operating_points": [], "band": BAND},
        calibration_source="calibration.json",
    )
    app = create_app({"background_loading": False}, predictors={"banded": predictor})
    yield app.test_client()
    serving_state(app).registry.close()


def test_predictions_carry_the_verdict_by_the_band(banded_client):
    images = [encode(Image.new("RGB", (48, 48), (red, 10, 200))) for red in (51, 52, 128, 203, 204, 255)]
    body = assert_matches_openapi(post_files(banded_client, *images), "/predict")
    predictions = body["predictions"]
    assert [p["verdict"] for p in predictions] == [
        "real",  # 0.2 = lower
        "inconclusive",
        "inconclusive",
        "inconclusive",
        "ai-generated",  # 0.8 = upper
        "ai-generated",
    ]
    assert [p["label"] for p in predictions] == ["real", "real", "ai-generated", *["ai-generated"] * 3]
    assert all(p["band"] == {"lower": 0.2, "upper": 0.8} for p in predictions)
    assert all([w["code"] for w in p["warnings"]] == ["demo_model"] for p in predictions)
    assert body["model"]["demo"] is True


def test_warnings_come_from_the_uploaded_bytes(banded_client):
    grey_jpeg = encode(Image.new("L", (300, 200), 90), "JPEG", quality=30)
    transparent = encode(Image.new("RGBA", (16, 16), (255, 0, 0, 0)))
    response = post_files(banded_client, (grey_jpeg, "grey.jpg"), (transparent, "clear.png"))
    grey, clear = assert_matches_openapi(response, "/predict")["predictions"]
    assert [w["code"] for w in grey["warnings"]] == [
        "larger_than_training",  # shorter side 200 > 4 x 32
        "low_jpeg_quality",
        "grayscale",
        "demo_model",
    ]
    assert "much larger than the model's 32x32 input" in grey["warnings"][0]["message"]
    assert clear["converted"] is True  # alpha dropped before the model, but still warned about
    assert [w["code"] for w in clear["warnings"]] == [
        "smaller_than_training",
        "mostly_transparent",
        "demo_model",
    ]


def test_metadata_shows_the_band_or_why_there_is_none(client, banded_client):
    def section(test_client, name):
        response = test_client.get(f"/v1/models/{name}/metadata")
        return assert_matches_openapi(response, "/v1/models/{name}/metadata", "get")["metadata"]["aiclassify"]

    banded = section(banded_client, "banded")
    assert banded["band"] == BAND and banded["band_note"] is None and banded["demo"] is True
    faces, general = section(client, "faces"), section(client, "general")
    assert faces["band"] is None and faces["band_note"] == "no band: the run has not been evaluated"
    assert general["band"] is None and "evaluated before inconclusive bands" in general["band_note"]
    assert faces["demo"] is True  # the tiny run is trained on the demo data


def test_a_run_without_a_band_answers_its_label_as_verdict(client):
    body = assert_matches_openapi(post_files(client, image_bytes("JPEG", size=(64, 48))), "/predict")
    [prediction] = body["predictions"]
    assert prediction["verdict"] == prediction["label"] and prediction["band"] is None
    assert [w["code"] for w in prediction["warnings"]] == ["demo_model", "no_face"]  # the face model
    assert body["model"]["demo"] is True and prediction["faces"] == []


def test_openapi_document_declares_verdicts_and_warnings():
    schemas = openapi_document()["components"]["schemas"]
    prediction = schemas["ImagePrediction"]
    assert {"verdict", "band", "warnings", "label"} <= set(prediction["required"])
    assert set(prediction["properties"]["verdict"]["enum"]) == {"real", "ai-generated", "inconclusive"}
    codes = set(schemas["ImageWarningInfo"]["properties"]["code"]["enum"])
    assert codes == set(WARNING_CODES) | set(FACE_WARNING_CODES)
    assert {"band", "band_note", "demo"} <= set(schemas["ModelDescription"]["required"])


# --- bad input ------------------------------------------------------------------------------------

BAD_INPUTS = {
    "empty file": (b"", 400, "empty"),
    "random bytes": (bytes(range(256)) * 4, 422, "not an image"),
    "text": (b"hello, this is not an image\n" * 10, 422, "not an image"),
    "truncated jpeg": (truncated(noise_image("JPEG")), 422, "decode"),
    "truncated png": (truncated(noise_image("PNG")), 422, "decode"),
    "truncated webp": (truncated(noise_image("WEBP")), 422, "decode"),
    "truncated gif": (truncated(noise_image("GIF")), 422, "decode"),
    "tiff": (image_bytes("TIFF"), 415, "unsupported image format TIFF"),
    "ico": (image_bytes("ICO", size=(32, 32)), 415, "unsupported image format ICO"),
    "ppm": (image_bytes("PPM"), 415, "unsupported image format PPM"),
    "png bomb": (png_with_size(100_000, 100_000), 422, "too large"),
    "png too wide": (png_with_size(20_000, 10), 422, "too large"),
    "gif bomb": (gif_with_size(65_535, 65_535), 422, "too large"),
    "jpeg bomb": (jpeg_with_size(60_000, 60_000), 422, "too large"),
    "zero size png": (png_with_size(0, 0), 422, ""),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_images(client, name):
    data, status, words = BAD_INPUTS[name]
    started = time.perf_counter()
    response = post_files(client, (data, "bad.bin"))
    assert response.status_code == status, response.get_json()
    assert words in assert_matches_openapi(response, "/predict")["error"]
    assert time.perf_counter() - started < 2  # bombs are rejected from the header, not decoded


def test_one_bad_image_fails_the_request_naming_it(client):
    response = post_files(client, (image_bytes(), "good.png"), (b"junk", "bad.png"))
    assert response.status_code == 422
    assert "image 1 (bad.png)" in assert_matches_openapi(response, "/predict")["error"]


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({}, 400),
        ({"data": {"other": (io.BytesIO(b"x"), "a.png")}, "content_type": "multipart/form-data"}, 400),
        ({"json": {"images": []}}, 400),
        ({"json": {"pictures": []}}, 400),
        ({"json": {"images": [{"b64": "***"}]}}, 400),
        ({"json": {"images": ["not an object"]}}, 400),
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"data": "plain", "content_type": "text/plain"}, 400),
    ],
)
def test_requests_without_a_usable_image(client, request_kwargs, status):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == status
    assert assert_matches_openapi(response, "/predict")["error"]


def test_too_many_images_and_too_large_body(client):
    response = post_files(client, *[image_bytes()] * 33)
    assert response.status_code == 413
    assert "too many images: 33, at most 32" in assert_matches_openapi(response, "/predict")["error"]
    instances = [{"b64": base64.b64encode(image_bytes()).decode()}] * 33
    response = client.post("/v1/models/faces:predict", json={"instances": instances})
    assert response.status_code == 413
    assert "too many instances: 33" in assert_matches_openapi(response, "/v1/models/{name}:predict")["error"]
    response = post_files(client, b"\xff" * (2 * 1024 * 1024))  # limit is 1 MB in this app
    assert response.status_code == 413
    assert "1 MB" in assert_matches_openapi(response, "/predict")["error"]
    response = client.post("/v1/models/faces:predict", json={"instances": [{"b64": "A" * 2_000_000}]})
    assert response.status_code == 413
    assert assert_matches_openapi(response, "/v1/models/{name}:predict")["error"]


def test_uploads_never_touch_the_disk(client, monkeypatch):
    import tempfile

    import werkzeug.formparser

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was spooled to disk")

    for module in (werkzeug.formparser, tempfile):
        for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile"):
            monkeypatch.setattr(module, name, no_disk, raising=False)
    big = image_bytes("BMP", size=(400, 400))  # 480 kB: Werkzeug would spool it
    assert len(big) > 400_000
    assert post_files(client, big).status_code == 200


def test_unknown_route_and_method_answer_json(client):
    response = client.get("/nothing")
    assert response.status_code == 404 and "error" in response.get_json()
    response = client.get("/predict")
    assert response.status_code == 405 and "error" in response.get_json()


# --- images as users send them ----------------------------------------------------------------------

ODD_IMAGES = {
    "cmyk jpeg": lambda: image_bytes("JPEG", "CMYK"),
    "grey png": lambda: image_bytes("PNG", "L"),
    "palette png": lambda: image_bytes("PNG", "P"),
    "rgba png": lambda: image_bytes("PNG", "RGBA"),
    "la png": lambda: image_bytes("PNG", "LA"),
    "bilevel png": lambda: image_bytes("PNG", "1"),
    "16-bit png": sixteen_bit_png,
    "animated gif": lambda: animated("GIF"),
    "animated webp": lambda: animated("WEBP"),
    "rgba webp": lambda: encode(translucent(), "WEBP", lossless=True),
    "exif rotated jpeg": exif_rotated_jpeg,
}


def translucent() -> Image.Image:
    image = gradient(mode="RGBA")
    image.putalpha(128)
    return image


@pytest.mark.parametrize("name", list(ODD_IMAGES))
def test_odd_images_are_converted_and_classified(client, name):
    response = post_files(client, (ODD_IMAGES[name](), "odd"))
    [prediction] = assert_matches_openapi(response, "/predict")["predictions"]
    assert prediction["converted"] is (name not in ("grey png",))


def test_exif_rotation_is_applied(client, raw_probability):
    rotated = exif_rotated_jpeg(orientation=6, size=(40, 20))
    [prediction] = post_files(client, rotated).get_json()["predictions"]
    upright = Image.open(io.BytesIO(rotated)).transpose(Image.Transpose.ROTATE_270).convert("RGB")
    assert upright.size == (20, 40)
    assert prediction["probability_ai"] == pytest.approx(raw_probability(encode(upright)), abs=1e-6)


def test_animation_uses_the_first_frame(client, raw_probability):
    [prediction] = post_files(client, animated("WEBP")).get_json()["predictions"]
    first = Image.open(io.BytesIO(animated("WEBP"))).convert("RGB")
    assert prediction["probability_ai"] == pytest.approx(raw_probability(encode(first)), abs=1e-6)


# --- TensorFlow Serving REST API ------------------------------------------------------------------


def test_tf_serving_predict_row_and_columnar_formats(client, raw_probability):
    images = [image_bytes(), image_bytes("JPEG", size=(50, 50))]
    raw = [raw_probability(data) for data in images]
    instances = [{"b64": b64(images[0])}, {"image_bytes": {"b64": b64(images[1])}}]
    rows = client.post("/v1/models/faces:predict", json={"instances": instances})
    body = assert_matches_openapi(rows, "/v1/models/{name}:predict")
    assert body["predictions"] == pytest.approx(raw, abs=1e-6)
    columns = client.post(
        "/v1/models/general:predict",
        json={
            "signature_name": "serving_default",
            "inputs": {"image_bytes": [{"b64": b64(d)} for d in images]},
        },
    )
    body = assert_matches_openapi(columns, "/v1/models/{name}:predict")
    assert body["outputs"] == pytest.approx(raw, abs=1e-6)  # raw model output, as TF Serving gives


def test_tf_serving_status_metadata_and_versions(client):
    status = assert_matches_openapi(client.get("/v1/models/faces"), "/v1/models/{name}", "get")
    [entry] = status["model_version_status"]
    assert entry == {
        "version": entry["version"],
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    assert entry["version"].isdigit()
    versioned = client.get(f"/v1/models/faces/versions/{entry['version']}")
    assert assert_matches_openapi(versioned, "/v1/models/{name}/versions/{version}", "get") == status
    metadata = assert_matches_openapi(
        client.get("/v1/models/general/metadata"), "/v1/models/{name}/metadata", "get"
    )
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert metadata["metadata"]["aiclassify"]["temperature"] == 2.0
    assert len(metadata["metadata"]["aiclassify"]["operating_points"]) == 3
    response = client.post(
        f"/v1/models/faces/versions/{entry['version']}:predict",
        json={"instances": [{"b64": b64(image_bytes())}]},
    )
    assert response.status_code == 200
    assert client.get("/v1/models/faces/versions/7").status_code == 404


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        ("/v1/models/nope:predict", {"instances": []}, 404),
        ("/v1/models/faces:predict", {"instances": [{"b64": "@@@"}]}, 400),
        ("/v1/models/faces:predict", {"instances": ["raw string"]}, 400),
        ("/v1/models/faces:predict", {"instances": []}, 400),
        ("/v1/models/faces:predict", {}, 400),
        ("/v1/models/faces:predict", {"instances": [], "inputs": []}, 400),
        ("/v1/models/faces:predict", {"signature_name": "serve_pixels", "instances": []}, 400),
        ("/v1/models/faces:predict", [1, 2], 400),
        ("/v1/models/faces:predict", {"instances": [{"b64": b64(b"not an image")}]}, 422),
        ("/v1/models/faces:predict", {"instances": [{"b64": b64(image_bytes("TIFF"))}]}, 415),
    ],
)
def test_tf_serving_errors(client, url, body, status):
    response = client.post(url, json=body)
    assert response.status_code == status
    assert list(assert_matches_openapi(response, "/v1/models/{name}:predict")) == ["error"]


def test_metadata_names_the_file_the_thresholds_came_from(client):
    def section(name):
        response = client.get(f"/v1/models/{name}/metadata")
        return assert_matches_openapi(response, "/v1/models/{name}/metadata", "get")["metadata"]["aiclassify"]

    assert section("general")["calibration_source"] == "calibration.json"
    assert section("faces")["calibration_source"] is None and section("faces")["operating_points"] == []


def test_legacy_calibration_in_metadata_is_still_served(legacy_calibrated_run):
    app = create_app({"models": {"legacy": str(legacy_calibrated_run)}, "background_loading": False})
    client = app.test_client()
    try:
        response = client.get("/v1/models/legacy/metadata")
        section = assert_matches_openapi(response, "/v1/models/{name}/metadata", "get")["metadata"][
            "aiclassify"
        ]
        assert section["temperature"] == CALIBRATION["temperature"] and len(section["operating_points"]) == 3
        assert "metadata.json" in section["calibration_source"]
        body = assert_matches_openapi(
            post_files(client, image_bytes(), url="/predict?target_fpr=0.01"), "/predict"
        )
        assert (body["predictions"][0]["threshold"], body["predictions"][0]["operating_point"]) == (
            0.9,
            "fpr_1pct",
        )
    finally:
        serving_state(app).registry.close()


def test_tf_serving_unknown_model_status(client):
    response = client.get("/v1/models/nope")
    assert response.status_code == 404
    assert assert_matches_openapi(response, "/v1/models/{name}", "get")["error"]


# --- API key, server errors, logging ----------------------------------------------------------------


def test_api_key():
    app = create_app({"api_key": "s3cret", "background_loading": False}, predictors={"fake": FakePredictor()})
    client = app.test_client()
    try:
        response = post_files(client, image_bytes())
        assert response.status_code == 401
        assert "X-API-Key" in assert_matches_openapi(response, "/predict")["error"]
        headers = {"X-API-Key": "wrong"}
        assert client.post("/v1/models/fake:predict", json={}, headers=headers).status_code == 401
        response = client.post(
            "/predict",
            data={"file": (io.BytesIO(image_bytes()), "a.png")},
            headers={"X-API-Key": "s3cret"},
            content_type="multipart/form-data",
        )
        assert response.status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    finally:
        serving_state(app).registry.close()


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/predict", "application/json"),
        ("/v1/models/faces:predict", "application/json"),
        ("/v1/models/faces:predict", "text/plain"),  # TF Serving reads any body as JSON
    ],
)
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_json_is_a_400_and_logs_no_traceback(fake_app, caplog, url, content_type, depth):
    body = '{"images": ' + "[" * depth + "]" * depth + "}"
    with caplog.at_level(logging.INFO, logger="aiclassify.serving"):
        response = fake_app.test_client().post(url, data=body, content_type=content_type)
    assert response.status_code == 400
    path = "/predict" if url == "/predict" else "/v1/models/{name}:predict"
    message = assert_matches_openapi(response, path)["error"]
    assert message == "the request body is not valid JSON: nested too deeply"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]


def test_server_error_is_json_and_logged(caplog):
    predictor = FakePredictor(fail_with=RuntimeError("the accelerator caught fire"))
    app = create_app({"background_loading": False}, predictors={"fake": predictor})
    try:
        with caplog.at_level(logging.INFO, logger="aiclassify.serving"):
            response = post_files(app.test_client(), image_bytes())
        assert response.status_code == 500
        body = assert_matches_openapi(response, "/predict")
        assert "fire" not in body["error"] and "Traceback" not in response.get_data(as_text=True)
        assert any("fire" in (r.exc_text or "") for r in caplog.records if r.levelno == logging.ERROR)
        assert any("POST /predict 500" in r.getMessage() for r in caplog.records)
    finally:
        serving_state(app).registry.close()


# --- batching ---------------------------------------------------------------------------------------


def test_concurrent_requests_are_batched():
    predictor = FakePredictor()
    app = create_app(
        {"background_loading": False, "max_batch_size": 8, "max_batch_wait_ms": 200},
        predictors={"fake": predictor},
    )
    images = [image_bytes(size=(20 + i, 20)) for i in range(16)]
    results: dict[int, int] = {}

    def send(index: int) -> None:
        response = post_files(app.test_client(), images[index])
        results[index] = response.status_code

    try:
        # Hold the model while the requests arrive: each is prepared in its own thread before it is
        # queued, and an instant fake model would otherwise score every one before the next is queued.
        predictor.release.clear()
        threads = [threading.Thread(target=send, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        predictor.release.set()
        for thread in threads:
            thread.join(20)
        assert results == dict.fromkeys(range(16), 200)
        assert max(predictor.batches[1:]) > 1  # the first entry is the warm-up call
        assert max(predictor.batches) <= 8 and sum(predictor.batches[1:]) == 16
    finally:
        serving_state(app).registry.close()


def test_batch_queue_isolates_a_failing_item():
    def score(items):
        if "bad" in items:
            raise ValueError("bad input")
        return [len(item) for item in items]

    queue = BatchQueue(score, max_batch_size=4, max_wait_s=0.2)
    try:
        futures = [queue.submit(item) for item in ["a", "bad", "ccc"]]
        assert futures[0].result(5) == 1 and futures[2].result(5) == 3
        with pytest.raises(ValueError):
            futures[1].result(5)
        assert queue.batch_sizes[0] == 3
    finally:
        queue.close()


# --- settings and model sources ---------------------------------------------------------------------


def test_default_models_are_the_shipped_ones_else_the_demo_runs(tmp_path):
    assert default_models(tmp_path) == (("faces", "runs/demo"), ("general", "runs/demo-general"))
    (tmp_path / "models" / "faces").mkdir(parents=True)  # a folder without a manifest is not shipped
    (tmp_path / "models" / "general").mkdir()
    (tmp_path / "models" / "general" / "MANIFEST.json").write_text("{}")
    assert default_models(tmp_path) == (("general", "models/general"),)
    assert default_models(REPO)[-1] == ("general", "models/general")


def test_settings_from_environment():
    settings = load_settings(
        environ={
            "AICLASSIFY_MODELS": "faces=runs/demo, general=runs/demo-general",
            "AICLASSIFY_DEFAULT_MODEL": "general",
            "AICLASSIFY_MAX_UPLOAD_MB": "2.5",
            "AICLASSIFY_API_KEY": "k",
            "AICLASSIFY_BACKGROUND_LOADING": "false",
        }
    )
    assert settings.models == (("faces", "runs/demo"), ("general", "runs/demo-general"))
    assert settings.default_model == "general" and settings.api_key == "k"
    assert settings.max_content_length == int(2.5 * 1024 * 1024) and settings.background_loading is False
    assert load_settings(environ={"AICLASSIFY_MODELS": "a=x,b=y"}).default_model == "a"
    for bad in (
        {"AICLASSIFY_MODELS": "nopath"},
        {"AICLASSIFY_MODELS": "a=x,a=y"},
        {"AICLASSIFY_MODELS": "a=x", "AICLASSIFY_DEFAULT_MODEL": "b"},
        {"AICLASSIFY_MAX_UPLOAD_MB": "lots"},
        {"AICLASSIFY_MAX_IMAGES": "0"},
        {"AICLASSIFY_MAX_FORM_FIELD_KB": "64"},  # below the parser's 64 KB buffer: no file would pass
        {"AICLASSIFY_MAX_FORM_PARTS": "32"},  # not even one part per image (max_images 32)
        {"AICLASSIFY_SOCKET_TIMEOUT_S": "0"},
    ):
        with pytest.raises(SettingsError):
            load_settings(environ=bad)
    with pytest.raises(SettingsError):
        load_settings({"no_such_setting": 1}, environ={})


def test_bare_saved_model_path(tiny_run, raw_probability):
    app = create_app({"models": {"bare": str(tiny_run / "saved_model")}, "background_loading": False})
    try:
        data = encode(gradient())
        body = assert_matches_openapi(post_files(app.test_client(), data), "/predict")
        assert body["predictions"][0]["probability_ai"] == pytest.approx(raw_probability(data), abs=1e-6)
        assert body["model"]["run"] == "run"  # metadata read from the run directory around it
    finally:
        serving_state(app).registry.close()
