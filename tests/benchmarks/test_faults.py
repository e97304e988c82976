"""The fault-tolerance load of the serving benchmark (aiclassify.benchmarks.faults, ``bench_serve.py
--fault-rate``): the plan, the faulty requests, the report, and tiny runs against real servers."""

from __future__ import annotations

import io
import json
from collections import Counter
from urllib.parse import urlsplit

import pytest
from builders import FakePredictor
from conftest import load_script, serve_app
from PIL import Image

from aiclassify.benchmarks import faults, report
from aiclassify.benchmarks.load import demo_images

LIMIT_MB = 0.05  # a small upload limit, so that bodies over it stay small


script = load_script("bench_serve")


def test_the_plan_is_seeded_and_the_fault_kinds_take_turns():
    plan = faults.fault_plan(10_000, 0.1, seed=3)
    assert plan == faults.fault_plan(10_000, 0.1, seed=3) != faults.fault_plan(10_000, 0.1, seed=4)
    kinds = Counter(kind for kind in plan if kind is not None)
    assert 900 < sum(kinds.values()) < 1100
    assert set(kinds) == set(faults.FAULT_KINDS) and max(kinds.values()) - min(kinds.values()) <= 1
    assert faults.fault_plan(50, 0.0) == [None] * 50
    assert faults.fault_plan(12, 1.0) == list(faults.FAULT_KINDS) * 2


def test_each_faulty_request_is_the_fault_it_names():
    image = demo_images(1, 32)[0]
    limit = 50_000
    requests = {kind: faults.faulty_request(kind, image, limit) for kind in faults.FAULT_KINDS}
    path, headers, body = requests["truncated"]
    assert path == "/predict" and headers["Content-Type"].startswith("multipart/form-data")
    assert image[: len(image) // 2] in body and image not in body
    assert b"not a photo" in requests["not_an_image"][2] and image not in requests["not_an_image"][2]
    path, headers, body = requests["bad_json"]
    assert headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(body)
    path, headers, body = requests["over_limit"]
    assert len(body) > limit and body.startswith(image) and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).size == (32, 32)  # a real image, only too large a body
    assert (
        requests["unknown_model"][0] == "/predict?model=no-such-model"
        and image in requests["unknown_model"][2]
    )
    assert image in requests["disconnect"][2]
    with pytest.raises(ValueError):
        faults.faulty_request("gremlins", image, limit)


def test_the_summary_counts_lost_valid_requests_and_server_errors():
    plan = [None, None, None, "truncated", "disconnect", None]
    answers = Counter({("truncated", "422"): 1, ("disconnect", "no answer"): 1})
    summary = faults.summarize_faults(
        plan, [0.01, 0.02], ["HTTP 503: b'{}'", "ConnectionResetError: x"], answers, 2.0, 4
    )
    assert summary["valid_sent"] == 4 and summary["valid_ok"] == 2 and summary["valid_lost"] == 2
    assert summary["faulty_sent"] == 2 and summary["unexpected_fault_answers"] == 0
    assert summary["fault_statuses"] == {"truncated": {"422": 1}, "disconnect": {"no answer": 1}}
    assert summary["server_errors_seen"] == 1 and summary["server_errors_counted"] is None
    assert summary["valid_throughput_rps"] == 1.0 and summary["p50_ms"] == pytest.approx(15)
    worse = faults.summarize_faults(plan, [0.01], [], Counter({("truncated", "500"): 1}), 1.0, 4, 3.0, 5.0)
    assert worse["server_errors_seen"] == 1 and worse["server_errors_counted"] == 2
    assert worse["unexpected_fault_answers"] == 1
    rows = report.fault_goal_rows([summary, {**summary, "valid_lost": 0, "server_errors_seen": 0}])
    assert [row["met"] for row in rows] == [False, None]  # None: fewer than 10,000 requests
    clean = {**summary, "valid_lost": 0, "server_errors_seen": 0, "requests": 10_000}
    assert report.fault_goal_rows([clean])[0]["met"] is True


def test_a_fault_rate_outside_0_to_1_is_refused():
    assert script.parse_args(["--fault-rate", "0.1"]).fault_rate == 0.1
    with pytest.raises(SystemExit):
        script.parse_args(["--fault-rate", "1.5"])


def test_no_valid_request_is_lost_on_the_api_in_a_thread():
    """60 requests, a quarter faulty, at concurrency 4, against the real app on a threaded Werkzeug
    server (a fake model: no TensorFlow)."""
    from aiclassify.serving.app import create_app

    app = create_app(
        {"background_loading": False, "max_upload_mb": LIMIT_MB}, predictors={"fake": FakePredictor()}
    )
    with serve_app(app) as url:
        port = urlsplit(url).port
        load = faults.run_fault_load(port, demo_images(4, 32), 60, 4, 0.25, seed=1, max_upload_mb=LIMIT_MB)
    assert load["requests"] == 60 and load["valid_sent"] + load["faulty_sent"] == 60
    assert load["valid_lost"] == 0, load["lost_examples"]
    assert load["valid_ok"] == load["valid_sent"] > 0
    assert load["server_errors_seen"] == 0 and load["server_errors_counted"] == 0
    assert set(load["fault_statuses"]) == set(faults.FAULT_KINDS)
    for kind, answers in load["fault_statuses"].items():
        assert set(answers) == {faults.EXPECTED_STATUS[kind]}, (kind, answers)


@pytest.mark.slow
def test_no_valid_request_is_lost_under_gunicorn(tiny_run, tmp_path, monkeypatch):
    """The script's fault-tolerance run on the tiny model under gunicorn: 60 requests, a fifth
    faulty, at concurrency 4 (about half a minute)."""
    monkeypatch.setenv("AICLASSIFY_MAX_UPLOAD_MB", str(LIMIT_MB))
    out = tmp_path / "faults.json"
    arguments = ["--run", str(tiny_run), "--fault-rate", "0.2", "--fault-seed", "2", "--requests", "60"]
    arguments += ["--levels", "4", "--warmup", "2", "--images", "4", "--out", str(out)]
    assert script.main(arguments) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["max_upload_mb"] == LIMIT_MB and results["settings"]["fault_rate"] == 0.2
    (load,) = results["fault_loads"]
    assert load["concurrency"] == 4 and load["requests"] == 60 and load["faulty_sent"] >= 6
    assert load["valid_lost"] == 0, load["lost_examples"]
    assert load["valid_ok"] == load["valid_sent"]
    assert load["server_errors_seen"] == 0 and load["server_errors_counted"] == 0
    assert load["server_log_errors"] == 0
    assert set(load["fault_statuses"]) == set(faults.FAULT_KINDS)
