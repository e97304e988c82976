"""``GET /metrics``: Prometheus metrics of one app (requests by URL rule and status, latency, batch sizes,
refusals by reason, decode time, explanations in progress), behind the API key, declared in the OpenAPI
document, with bounded labels and a registry per app."""

from __future__ import annotations

import io
import threading
import uuid

import prometheus_client
import pytest
from builders import FakePredictor, image_bytes, noise_image, openapi_document, truncated
from prometheus_client.parser import text_string_to_metric_families

from aiclassify.serving.app import create_app
from aiclassify.serving.errors import ApiError
from aiclassify.serving.images import ImageLimits, prepare_image
from aiclassify.serving.metrics import ApiMetrics, batch_size_buckets
from aiclassify.serving.state import serving_state

KEY = "metrics-key"
AUTH = {"X-API-Key": KEY}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text answer, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter never incremented)."""
    return scraped.get((name, frozenset(labels.items())), 0.0)


def label_values(scraped: dict, name: str, label: str) -> set[str]:
    """Every value ``label`` takes in the samples called ``name``."""
    return {dict(labels)[label] for sample_name, labels in scraped if sample_name == name}


@pytest.fixture
def predictor():
    return FakePredictor()


@pytest.fixture
def app(predictor):
    """A fresh app per test (so counts start at zero) with an API key and a small body limit."""
    application = create_app(
        {"api_key": KEY, "background_loading": False, "max_upload_mb": 0.05, "max_images": 2},
        predictors={"fake": predictor},
    )
    yield application
    serving_state(application).registry.close()


def predict(client, data: bytes | None = None, query: str = "", content_type: str = "image/png") -> int:
    """The status of one ``POST /predict{query}`` with the key and a raw body (a PNG by default)."""
    body = image_bytes() if data is None else data
    return client.post(f"/predict{query}", data=body, content_type=content_type, headers=AUTH).status_code


def scrape(client) -> dict:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples(response.get_data(as_text=True))


def test_metrics_need_the_api_key_when_one_is_set(app):
    client = app.test_client()
    response = client.get("/metrics")
    assert response.status_code == 401 and "X-API-Key" in response.get_json()["error"]
    assert client.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/healthz").status_code == 200  # the probes stay public
    scraped = scrape(client)
    assert value(scraped, "aiclassify_requests_total", route="/metrics", method="GET", status="401") == 2
    assert value(scraped, "aiclassify_rejected_requests_total", reason="unauthorized") == 2


def test_metrics_without_a_key_are_open():
    app = create_app({"background_loading": False}, predictors={"fake": FakePredictor()})
    try:
        assert app.test_client().get("/metrics").status_code == 200
    finally:
        serving_state(app).registry.close()


def test_requests_are_counted_by_url_rule_and_status_never_by_raw_path(app):
    client = app.test_client()
    names = [uuid.uuid4().hex for _ in range(5)]
    for name in names:
        assert client.get(f"/v1/models/{name}", headers=AUTH).status_code == 404
        assert client.get(f"/no/such/{name}", headers=AUTH).status_code == 404
        client.open("/predict", method=f"X{name[:6].upper()}", headers=AUTH)  # any method token
    assert [predict(client) for _ in range(3)] == [200] * 3
    scraped = scrape(client)
    status_rule = app.url_map.bind("localhost").match("/v1/models/x", return_rule=True)[0].rule
    assert value(scraped, "aiclassify_requests_total", route=status_rule, method="GET", status="404") == 5
    assert value(scraped, "aiclassify_requests_total", route="unmatched", method="GET", status="404") == 5
    assert value(scraped, "aiclassify_requests_total", route="/predict", method="POST", status="200") == 3
    routes = label_values(scraped, "aiclassify_requests_total", "route")
    assert not any(name in route for route in routes for name in names)
    assert routes <= {rule.rule for rule in app.url_map.iter_rules()} | {"unmatched"}
    assert label_values(scraped, "aiclassify_requests_total", "method") <= {"GET", "POST", "other"}
    assert "other" in label_values(scraped, "aiclassify_requests_total", "method")


def test_latency_histogram_counts_every_request(app):
    client = app.test_client()
    assert [predict(client) for _ in range(4)] + [predict(client, b"")] == [200] * 4 + [400]
    scraped = scrape(client)
    count = value(scraped, "aiclassify_request_duration_seconds_count", route="/predict", method="POST")
    total = value(scraped, "aiclassify_request_duration_seconds_sum", route="/predict", method="POST")
    infinite = value(
        scraped, "aiclassify_request_duration_seconds_bucket", route="/predict", method="POST", le="+Inf"
    )
    assert count == infinite == 5 and total > 0


def test_batch_sizes_of_concurrent_requests(app, predictor):
    client = app.test_client()
    predictor.release.clear()  # the model blocks: requests queue up and are scored together
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(predict(client))) for _ in range(6)]
    for thread in threads:
        thread.start()
    threading.Event().wait(0.3)
    predictor.release.set()
    for thread in threads:
        thread.join(10)
    assert answers == [200] * 6
    batcher = serving_state(app).registry.models["fake"].batcher
    scraped = scrape(client)
    assert value(scraped, "aiclassify_batch_size_sum", model="fake") == 6 == sum(batcher.batch_sizes)
    assert value(scraped, "aiclassify_batch_size_count", model="fake") == len(batcher.batch_sizes)
    assert value(scraped, "aiclassify_batch_size_bucket", model="fake", le="32.0") == len(batcher.batch_sizes)


def test_refused_requests_are_counted_by_reason(app):
    client = app.test_client()
    assert predict(client, query="?model=nope") == 404
    assert predict(client, b"x" * 80_000) == 413  # over max_upload_mb (0.05 MB)
    assert predict(client, b"{}", content_type="text/plain") == 400
    files = {"file": [(io.BytesIO(image_bytes()), f"{i}.png") for i in range(3)]}
    assert (
        client.post("/predict", data=files, content_type="multipart/form-data", headers=AUTH).status_code
        == 413  # more than max_images (2)
    )
    assert predict(client, query="?target_fpr=abc") == 400
    assert predict(client, b"not an image at all") == 422
    scraped = scrape(client)
    reasons = {
        reason: value(scraped, "aiclassify_rejected_requests_total", reason=reason)
        for reason in label_values(scraped, "aiclassify_rejected_requests_total", "reason")
    }
    assert reasons["unknown_model"] == 1 and reasons["body_too_large"] == 1
    assert reasons["no_image"] == 1 and reasons["too_many_images"] == 1 and reasons["invalid_request"] == 1
    assert sum(reasons.values()) == 6  # the 422 too, under the reason its error carries


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_file"),
        (b"not an image at all", "not_an_image"),
        (image_bytes("TIFF"), "unsupported_format"),
        (image_bytes(size=(300, 300)), "image_too_large"),
        (truncated(noise_image("JPEG", size=(64, 64))), "corrupt_image"),
    ],
)
def test_image_checks_name_their_reason(data, reason):
    with pytest.raises(ApiError) as refused:
        prepare_image(data, ImageLimits(max_pixels=50_000, max_side=1000))
    assert refused.value.reason == reason


def test_an_error_without_a_reason_gets_one_from_its_status():
    assert ApiError(404, "gone").reason == "not_found" and ApiError(413, "big").reason == "body_too_large"
    assert ApiError(418, "teapot").reason == "client_error" and ApiError(502, "x").reason == "server_error"
    assert ApiError(404, "gone", reason="unknown_model").reason == "unknown_model"


def test_decode_time_and_explanations_in_progress(app):
    metrics = serving_state(app).metrics
    metrics.observe_decode(0.003)
    metrics.observe_decode(0.2)
    with serving_state(app).explanation_slots.hold():
        scraped = scrape(app.test_client())
    assert value(scraped, "aiclassify_image_decode_seconds_count") == 2
    assert value(scraped, "aiclassify_image_decode_seconds_bucket", le="0.005") == 1
    assert value(scraped, "aiclassify_image_decode_seconds_sum") == pytest.approx(0.203)
    assert value(scraped, "aiclassify_explanations_in_progress") == 1
    assert value(scrape(app.test_client()), "aiclassify_explanations_in_progress") == 0
    assert value(scraped, "process_resident_memory_bytes") > 0


def test_each_app_has_its_own_registry_and_the_global_one_is_untouched(app, predictor):
    other = create_app({"background_loading": False}, predictors={"fake": FakePredictor()})
    try:
        assert [predict(app.test_client()) for _ in range(3)] == [200] * 3
        scraped = samples(other.test_client().get("/metrics").get_data(as_text=True))
        assert value(scraped, "aiclassify_requests_total", route="/predict", method="POST", status="200") == 0
        assert serving_state(app).metrics.registry is not serving_state(other).metrics.registry
    finally:
        serving_state(other).registry.close()
    global_names = {family.name for family in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("aiclassify") for name in global_names)


def test_metrics_are_declared_in_the_openapi_document(app):
    operation = openapi_document()["paths"]["/metrics"]["get"]
    assert operation["responses"]["200"]["content"] == {"text/plain": {"schema": {"type": "string"}}}
    assert operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert operation.get("security") != []  # behind the key when one is set, unlike /healthz
    response = app.test_client().get("/metrics", headers=AUTH)
    declared = operation["responses"][str(response.status_code)]["content"]
    assert response.headers["Content-Type"].split(";")[0] in declared


def test_batch_size_buckets_reach_the_largest_batch():
    assert batch_size_buckets(32) == (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    assert batch_size_buckets(12) == (1.0, 2.0, 4.0, 8.0, 12.0)
    assert batch_size_buckets(1) == (1.0,)
    assert b"aiclassify_batch_size_bucket" not in ApiMetrics(8).render()  # no model scored yet


def test_every_scored_image_records_its_decode_time(app):
    client = app.test_client()
    assert predict(client) == 200
    response = client.post(
        "/predict",
        data={"file": [(io.BytesIO(image_bytes()), "a.png"), (io.BytesIO(image_bytes("JPEG")), "b.jpg")]},
        headers=AUTH,
    )
    assert response.status_code == 200
    assert predict(client, b"not an image") == 422  # refused before decoding: no decode time
    scraped = scrape(client)
    assert value(scraped, "aiclassify_image_decode_seconds_count") == 3
    assert value(scraped, "aiclassify_image_decode_seconds_sum") > 0


def test_each_form_limit_is_counted_under_its_own_reason():
    application = create_app(
        {"background_loading": False, "max_images": 2, "max_form_parts": 4, "max_form_field_kb": 128},
        predictors={"fake": FakePredictor()},
    )
    client = application.test_client()
    parts = {"file": [(io.BytesIO(image_bytes()), f"{i}.png") for i in range(5)]}
    response = client.post("/predict", data=parts, content_type="multipart/form-data")
    assert response.status_code == 413 and "AICLASSIFY_MAX_FORM_PARTS" in response.get_json()["error"]
    field = {"model": "x" * 200_000, "file": (io.BytesIO(image_bytes()), "a.png")}
    response = client.post("/predict", data=field, content_type="multipart/form-data")
    assert response.status_code == 413 and "AICLASSIFY_MAX_FORM_FIELD_KB" in response.get_json()["error"]
    scraped = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scraped, "aiclassify_rejected_requests_total", reason="too_many_form_parts") == 1
    assert value(scraped, "aiclassify_rejected_requests_total", reason="form_field_too_large") == 1
    assert "body_too_large" not in label_values(scraped, "aiclassify_rejected_requests_total", "reason")
    serving_state(application).registry.close()
