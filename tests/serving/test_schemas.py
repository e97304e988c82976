"""The request models of schemas.py: what they accept, and what the OpenAPI document says of them."""

from __future__ import annotations

import re

import pytest
from builders import openapi_document
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aiclassify.serving.apispec import describe_validation_error
from aiclassify.serving.schemas import BASE64_PATTERN, Base64Image, PredictParameters, TFServingPredictRequest
from aiclassify.serving.uploads import decode_b64

PARAMETERS = ("model", "target_fpr", "operating_point", "explain")
# Every character the base64 grammar treats specially, and a few it must refuse.
BASE64_TEXT = st.text(alphabet="AZaz09+/_-= \t\r\n!.\x0b\xa0é", max_size=24)


def accepts(model, data) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(BASE64_TEXT)
def test_b64_is_checked_exactly_as_the_document_says(text):
    valid = accepts(Base64Image, {"b64": text})
    assert valid == (re.search(BASE64_PATTERN, text) is not None), text
    if valid:
        assert decode_b64(text, "b64")  # never empty, never undecodable once valid


@pytest.mark.parametrize("name", PARAMETERS)
def test_a_parameter_given_twice_is_an_error_naming_it(name):
    with pytest.raises(ValidationError) as raised:
        PredictParameters.model_validate({name: ["", "0.5"]})  # ?name=&name=0.5
    assert (
        describe_validation_error(raised.value) == f"{name} must be given once, as one value, not ['', '0.5']"
    )


def test_tf_serving_request_has_exactly_one_format():
    image = {"b64": "AAAA"}
    assert accepts(TFServingPredictRequest, {"instances": [image]})
    assert accepts(TFServingPredictRequest, {"inputs": [image]})
    for body in ({}, {"instances": [image], "inputs": [image]}, {"instances": None, "inputs": [image]}):
        assert not accepts(TFServingPredictRequest, body), body
    schema = openapi_document()["components"]["schemas"]["TFServingPredictRequest"]
    assert schema["oneOf"] == [{"required": ["instances"]}, {"required": ["inputs"]}]
    for name in ("instances", "inputs"):
        assert "default" not in schema["properties"][name]
        assert {"type": "null"} not in schema["properties"][name].get("anyOf", [])


def values(schema: dict) -> list[dict]:
    """The alternatives a parameter's schema allows, without its annotations."""
    annotations = ("title", "description", "default")
    return schema.get("anyOf") or [{key: value for key, value in schema.items() if key not in annotations}]


def test_parameters_are_a_value_empty_or_left_out_and_null_only_in_json():
    document = openapi_document()
    operation = document["paths"]["/predict"]["post"]
    query = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    schemas = document["components"]["schemas"]
    form, body = schemas["PredictForm"]["properties"], schemas["PredictJsonRequest"]["properties"]
    bounded = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}
    empty, null = {"const": ""}, {"type": "null"}
    for parameters in (query, form):  # null there would be the text "null"
        assert {name: values(parameters[name]) for name in PARAMETERS} == {
            "model": [{"type": "string"}],
            "target_fpr": [bounded, empty],
            "operating_point": [{"type": "string"}],
            "explain": [{"type": "boolean"}, empty],
        }
        assert not any("default" in parameters[name] for name in PARAMETERS)
    assert values(body["target_fpr"]) == [bounded, null, empty]
    assert values(body["model"]) == [{"type": "string"}, null]


def test_the_document_declares_what_an_image_must_be():
    schemas = openapi_document()["components"]["schemas"]
    assert schemas["Base64Image"]["properties"]["b64"]["pattern"] == BASE64_PATTERN
    form = schemas["PredictForm"]
    assert form["anyOf"] == [{"required": ["file"]}, {"required": ["files"]}]
    for name in ("file", "files"):
        assert form["properties"][name]["minItems"] == 1
        assert form["properties"][name]["items"]["minLength"] == 1
