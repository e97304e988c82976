"""``POST /predict?explain=true``: Grad-CAM overlays from the run's model.keras (Flask test client)."""

from __future__ import annotations

import base64
import io

import pytest
from builders import assert_matches_openapi, image_bytes
from PIL import Image

from aiclassify.serving.app import create_app
from aiclassify.serving.state import serving_state


@pytest.fixture(scope="module")
def client(tiny_run, bare_saved_model):
    """``run``: a run directory; ``bare``: the same run's SavedModel alone (no model.keras)."""
    application = create_app(
        {
            "models": {"run": str(tiny_run), "bare": str(bare_saved_model)},
            "background_loading": False,
            "max_batch_wait_ms": 1,
        }
    )
    yield application.test_client()
    serving_state(application).registry.close()


def overlay_of(prediction: dict) -> Image.Image:
    explanation = prediction["explanation"]
    assert explanation["method"] == "grad-cam" and explanation["layer"] == "block2_conv1"
    image = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png_b64"], validate=True)))
    assert image.format == "PNG"
    return image


def test_explain_in_the_query_adds_an_overlay_of_the_image_size(client):
    files = [
        (io.BytesIO(image_bytes(size=(48, 40))), "a.png"),
        (io.BytesIO(image_bytes("JPEG", size=(30, 50))), "b.jpg"),
    ]
    response = client.post("/predict?explain=true", data={"file": files}, content_type="multipart/form-data")
    body = assert_matches_openapi(response, "/predict")
    sizes = [overlay_of(p).size for p in body["predictions"]]
    assert sizes == [(48, 40), (30, 50)] == [(p["width"], p["height"]) for p in body["predictions"]]


def test_explain_in_the_form_and_json_body(client):
    response = client.post(
        "/predict",
        data={"file": (io.BytesIO(image_bytes()), "a.png"), "explain": "1"},
        content_type="multipart/form-data",
    )
    assert overlay_of(assert_matches_openapi(response, "/predict")["predictions"][0]).size == (40, 30)
    payload = {"images": [{"b64": base64.b64encode(image_bytes()).decode()}], "explain": True}
    body = assert_matches_openapi(client.post("/predict", json=payload), "/predict")
    assert overlay_of(body["predictions"][0]).size == (40, 30)


def test_no_explanation_unless_asked(client):
    for query in ("", "?explain=false", "?explain=0"):
        response = client.post(f"/predict{query}", data=image_bytes(), content_type="image/png")
        assert "explanation" not in assert_matches_openapi(response, "/predict")["predictions"][0]


def test_explain_without_model_keras_is_422(client):
    response = client.post("/predict?model=bare&explain=true", data=image_bytes(), content_type="image/png")
    assert response.status_code == 422
    assert "run directory with model.keras" in assert_matches_openapi(response, "/predict")["error"]
    response = client.post("/predict?model=bare", data=image_bytes(), content_type="image/png")
    assert assert_matches_openapi(response, "/predict")["predictions"][0]["label"]


def test_bad_explain_value_is_400(client):
    response = client.post("/predict?explain=maybe", data=image_bytes(), content_type="image/png")
    assert response.status_code == 400
    assert "explain must be true or false" in assert_matches_openapi(response, "/predict")["error"]


def test_a_saved_model_inside_its_run_directory_explains_with_the_runs_model_keras(tiny_run):
    app = create_app({"models": {"inner": str(tiny_run / "saved_model")}, "background_loading": False})
    try:
        response = app.test_client().post(
            "/predict?explain=true", data=image_bytes(), content_type="image/png"
        )
        assert overlay_of(assert_matches_openapi(response, "/predict")["predictions"][0]).size == (40, 30)
    finally:
        serving_state(app).registry.close()
