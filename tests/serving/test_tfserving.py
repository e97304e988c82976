"""The TensorFlow Serving routes' URLs and bodies, on fake predictors (conftest.fake_app)."""

from __future__ import annotations

import pytest
from builders import assert_matches_openapi, openapi_document


@pytest.fixture
def client(fake_app):
    return fake_app.test_client()


def allowed(response) -> set[str]:
    return {method.strip() for method in response.headers["Allow"].split(",")}


@pytest.mark.parametrize("url", ["/v1/models/faces:predict", "/v1/models/faces/versions/1:predict"])
def test_the_predict_verb_is_never_read_as_part_of_a_name(client, url):
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = client.open(url, method=method)
        assert response.status_code == 405, (method, response.get_json())
        assert allowed(response) == {"POST", "OPTIONS"}
        assert "error" in response.get_json()
    response = client.options(url)
    assert response.status_code == 200 and allowed(response) == {"POST", "OPTIONS"}
    assert client.get("/v1/models/faces").status_code == 200
    assert client.get("/v1/models/faces/versions/1").status_code == 200


def test_the_document_says_a_name_or_version_has_no_colon():
    document = openapi_document()
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"] == {"type": "string", "pattern": "^[^/:]+$"}, path


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"instances": [{"b64": "AAAA"}], "inputs": [{"b64": "AAAA"}]},
        {"instances": None, "inputs": [{"b64": "AAAA"}]},
        {"instances": "", "inputs": [{"b64": "AAAA"}]},
    ],
)
def test_a_request_needs_exactly_one_of_instances_and_inputs(client, body):
    response = client.post("/v1/models/faces:predict", json=body)
    assert response.status_code == 400
    assert assert_matches_openapi(response, "/v1/models/{name}:predict")["error"]


def test_echoed_names_and_versions_are_truncated(client):
    long_name, long_version = "n" * 3000, "7" * 3000  # URLs stay under the server's limit (else 414)
    responses = [
        (client.get(f"/v1/models/{long_name}"), "n"),
        (client.post(f"/v1/models/{long_name}:predict", json={"instances": [{"b64": "AAAA"}]}), "n"),
        (client.get(f"/v1/models/faces/versions/{long_version}"), "7"),
    ]
    for response, character in responses:
        assert response.status_code == 404
        message = response.get_json()["error"]
        assert character * 64 + "..." in message and len(message) < 200  # the first 64 characters


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"instances": []}, "instances"),
        ({"inputs": []}, "inputs"),
        ({"inputs": {"image_bytes": []}}, "inputs"),
    ],
)
def test_an_empty_request_names_the_key_it_was_sent_in(client, body, named):
    response = client.post("/v1/models/faces:predict", json=body)
    assert response.status_code == 400
    message = assert_matches_openapi(response, "/v1/models/{name}:predict")["error"]
    assert message == f'{named} must be a non-empty list of {{"b64": "..."}} objects'
