"""``/predict``'s parameters as clients get them wrong, on fake predictors (conftest.fake_app)."""

from __future__ import annotations

import base64
import io

import pytest
from builders import assert_matches_openapi, image_bytes
from werkzeug.datastructures import MultiDict

REPEATED = [
    ("model", ["", "general"]),
    ("target_fpr", ["", "0.01"]),
    ("operating_point", ["", "fpr_1pct"]),
    ("explain", ["false", "false"]),
]


@pytest.fixture
def client(fake_app):
    return fake_app.test_client()


@pytest.mark.parametrize(("name", "values"), REPEATED)
def test_a_query_parameter_given_more_than_once_is_a_400_naming_it(client, name, values):
    query = "&".join(f"{name}={value}" for value in values)
    response = client.post(f"/predict?{query}", data=image_bytes(), content_type="image/png")
    assert response.status_code == 400
    assert assert_matches_openapi(response, "/predict")["error"] == (
        f"{name} must be given once, as one value, not {values!r}"
    )


@pytest.mark.parametrize(("name", "values"), REPEATED)
def test_a_form_field_given_more_than_once_is_a_400_naming_it(client, name, values):
    fields = MultiDict([(name, value) for value in values] + [("file", (io.BytesIO(image_bytes()), "a.png"))])
    response = client.post("/predict", data=fields, content_type="multipart/form-data")
    assert response.status_code == 400
    assert assert_matches_openapi(response, "/predict")["error"].startswith(f"{name} must be given once")


def test_an_empty_parameter_is_left_out(client):
    query = "model=&target_fpr=&operating_point=&explain="
    response = client.post(f"/predict?{query}", data=image_bytes(), content_type="image/png")
    prediction = assert_matches_openapi(response, "/predict")["predictions"][0]
    assert (prediction["model"]["name"], prediction["operating_point"]) == ("faces", None)
    assert "explanation" not in prediction


def test_an_unknown_model_name_is_echoed_truncated(client):
    image = {"b64": base64.b64encode(image_bytes()).decode()}
    response = client.post("/predict", json={"model": "m" * 1_000_000, "images": [image]})  # 1 MB
    assert response.status_code == 404
    message = assert_matches_openapi(response, "/predict")["error"]
    assert message.startswith("unknown model '" + "m" * 64 + "...'") and len(message) < 200
