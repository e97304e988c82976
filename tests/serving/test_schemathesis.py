"""Schemathesis against the API in-process: every operation of the served OpenAPI document, with
generated valid and invalid requests, and every built-in check on (no 5xx, statuses, content types,
headers and bodies as documented, valid data accepted, invalid data rejected, Allow headers...).

The app serves fake predictors (tests/builders.py), so thousands of requests take seconds and a
failure is the API's or its document's, never a model's. ``AICLASSIFY_FUZZ_PROFILE=long`` (``make
fuzz``) runs the same test with many more examples per operation.
"""

from __future__ import annotations

import os

import schemathesis
from builders import openapi_document
from hypothesis import HealthCheck, settings

PROFILES = {"quick": 100, "long": 1000}  # generated examples per operation and phase
MAX_RESPONSE_S = 10
PROFILE = os.environ.get("AICLASSIFY_FUZZ_PROFILE", "quick")
if PROFILE not in PROFILES:
    raise ValueError(f"AICLASSIFY_FUZZ_PROFILE must be one of {sorted(PROFILES)}, not {PROFILE!r}")

# The document says what a valid request is, but no schema says what an image is: a schema-valid
# base64 string or file is mostly not a decodable image (422), or one in a format the model does not
# serve (415). Nor can it bound what a deployment limits (AICLASSIFY_MAX_IMAGES images per request,
# AICLASSIFY_MAX_REQUEST_PIXELS...): over one, 413. Only the operations that take images may answer a
# schema-valid request so; anything else that rejects one (a 400 included) still fails
# positive_data_acceptance.
IMAGE_STATUSES = ["2xx", "401", "403", "404", "409", "413", "415", "422", "429", "5xx"]
CONFIG = schemathesis.Config.from_dict(
    {
        # The API ignores query parameters it does not know (docs/api.md), which OpenAPI cannot say:
        # an unknown one is not invalid data here.
        "generation": {"allow-extra-parameters": False},
        # Fake models answer in milliseconds: a request this slow is hanging (the server gives up on a
        # model after AICLASSIFY_REQUEST_TIMEOUT_S, 30 s).
        "checks": {"max_response_time": MAX_RESPONSE_S},
        "operations": [
            {
                "include-path-regex": "(^/predict|:predict)$",
                "checks": {"positive_data_acceptance": {"expected-statuses": IMAGE_STATUSES}},
            }
        ],
    }
)
# The document as the app serves it, loaded at import (schemathesis.pytest.from_fixture does not work
# with pytest 9: it reads a private attribute pytest no longer has); each case is sent to the app of
# the fake_app fixture.
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=PROFILES[PROFILE],
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_document(case, fake_app):
    case.call_and_validate(app=fake_app)
