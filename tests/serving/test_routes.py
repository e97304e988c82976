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


@pytest.mark.parametrize("name", [name for name, _ in REPEATED])
def test_an_uploaded_file_where_a_parameter_belongs_is_a_400_naming_it(client, name):
    # spectree serialises a failed validation, the client's values included, as JSON before the API
    # answers it: an uploaded file there used to make that fail, a 500.
    fields = MultiDict(
        [(name, (io.BytesIO(b"faces"), "p.txt")), ("file", (io.BytesIO(image_bytes()), "a.png"))]
    )
    response = client.post("/predict", data=fields, content_type="multipart/form-data")
    assert response.status_code == 400
    assert assert_matches_openapi(response, "/predict")["error"].startswith(name)


def test_a_json_integer_too_large_for_a_float_is_a_400(client):
    image = {"b64": base64.b64encode(image_bytes()).decode()}
    response = client.post("/predict", json={"target_fpr": int("9" * 400), "images": [image]})  # 1e400
    assert response.status_code == 400
    assert assert_matches_openapi(response, "/predict")[
        "error"
    ] == "target_fpr must be between 0 and 1, not " + ("9" * 64 + "...")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/faces//metadata",
        "/v1/models/faces%2F/metadata",
        "/v1//models/faces",
        "/v1/models/faces/versions//metadata",  # merged, the status of a version called "metadata"
    ],
)
def test_a_path_with_an_empty_segment_is_a_404_never_a_redirect(client, path):
    response = client.get(path, headers={"Host": "elsewhere.example"})
    assert response.status_code == 404, response.headers.get("Location")
    assert "error" in response.get_json() and "Location" not in response.headers
    response = client.post("/v1/models//faces:predict", json={"instances": [{"b64": "AAAA"}]})
    assert response.status_code == 404 and "error" in response.get_json()
