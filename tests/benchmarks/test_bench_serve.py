"""The serving benchmark (aiclassify.benchmarks, run by scripts/bench_serve.py): its pure helpers, the
script's options, and (slow) tiny end-to-end runs on 127.0.0.1: the default mode and the face mode."""

from __future__ import annotations

import io
import json
import math
import time

import pytest
from conftest import assert_runs_without_tensorflow, load_script

from aiclassify.benchmarks import forward, load, report, servers

script = load_script("bench_serve")


REFERENCE = {"single_forward_ms": 5.0, "batched_forward_ips": 300.0}


def load_result(server, concurrency, p50, throughput, errors=0, requests=100):
    return {
        "server": server,
        "concurrency": concurrency,
        "p50_ms": p50,
        "throughput_rps": throughput,
        "errors": errors,
        "requests": requests,
        "reference": REFERENCE,
    }


def test_percentile_interpolates_like_numpy():
    values = [0.4, 0.1, 0.3, 0.2]
    assert load.percentile(values, 50) == pytest.approx(0.25)
    assert load.percentile(values, 0) == 0.1 and load.percentile(values, 100) == 0.4
    assert load.percentile(values, 95) == pytest.approx(0.385)
    assert load.percentile([7.0], 99) == 7.0
    assert math.isnan(load.percentile([], 50))


def test_summarize_counts_errors_apart_from_latencies():
    summary = load.summarize([0.01, 0.02, 0.03], ["HTTP 503: b''", "HTTP 503: b''"], wall_s=0.5)
    assert summary["requests"] == 5 and summary["errors"] == 2
    assert summary["error_examples"] == ["HTTP 503: b''"]
    assert summary["p50_ms"] == pytest.approx(20) and summary["throughput_rps"] == pytest.approx(6)


def test_ratio_handles_missing_values():
    assert report.ratio(10, 4) == 2.5
    assert report.ratio(1, 0) is None and report.ratio(None, 1) is None and report.ratio(math.nan, 1) is None


def test_reference_between_averages_the_measurements_around_a_load():
    before = {
        "single_forward_ms": 4.0,
        "single_forward_mean_ms": 5.0,
        "batch8_forward_ips": 100.0,
        "batched_forward_ips": 200.0,
        "when": "before c=1",
    }
    after = {**before, "single_forward_ms": 6.0, "batched_forward_ips": 300.0, "when": "after c=1"}
    middle = forward.reference_between(before, after)
    assert middle["single_forward_ms"] == 5.0 and middle["batched_forward_ips"] == 250.0
    assert "when" not in middle


def test_ratio_and_goal_tables():
    loads = [
        load_result("api", 1, 9.0, 100.0),
        load_result("baseline", 1, 200.0, 5.0),
        load_result("api", 32, 150.0, 240.0, requests=10_000),
        load_result("baseline", 32, 900.0, 30.0),
    ]
    ratios = report.ratio_rows(loads)
    assert [r["concurrency"] for r in ratios] == [1, 32]
    assert ratios[1]["throughput_api_over_baseline"] == pytest.approx(8)
    assert ratios[0]["p50_baseline_over_api"] == pytest.approx(200 / 9)
    goals = {row["goal"].split(" at ")[0]: row for row in report.goal_rows(loads)}
    assert goals["p50"]["met"] is True and goals["p50"]["target"] == 10.0
    assert goals["throughput"]["met"] is True  # 240 >= 0.7 x 300
    assert [row["met"] for row in report.goal_rows(loads)] == [True, True, True, True]
    few = [load_result("api", 32, 150.0, 240.0, requests=2000)]
    assert report.goal_rows(few)[-1]["met"] is None  # no errors, but too few requests to tell
    failing = [load_result("api", 32, 150.0, 100.0, errors=1, requests=10_000)]
    assert [row["met"] for row in report.goal_rows(failing)] == [False, False]
    table = report.format_table(report.goal_rows(failing), ["goal", "measured", "met"])
    assert table.splitlines()[0].split() == ["goal", "measured", "met"] and "no" in table


def test_multipart_body_is_parsed_by_werkzeug():
    from werkzeug.test import EnvironBuilder

    body = load.multipart_body(b"\xff\xd8jpeg-bytes", "a.jpg")
    environ = EnvironBuilder(
        method="POST", data=body, content_type=f"multipart/form-data; boundary={load.BOUNDARY}"
    ).get_environ()
    from werkzeug.wrappers import Request

    upload = Request(environ).files["file"]
    assert upload.filename == "a.jpg" and upload.read() == b"\xff\xd8jpeg-bytes"


def test_a_missing_run_fails_with_a_clear_message(tmp_path, capsys):
    assert script.main(["--run", str(tmp_path / "nothing"), "--levels", "1"]) == 2
    assert "make demo" in capsys.readouterr().err


@pytest.mark.slow
def test_end_to_end_on_a_tiny_model(tiny_run, tmp_path):
    """Both servers under gunicorn, a few requests at concurrency 1 and 2 (about a minute)."""
    out = tmp_path / "bench.json"
    assert (
        script.main(
            [
                "--run",
                str(tiny_run),
                "--requests",
                "12",
                "--baseline-requests",
                "6",
                "--levels",
                "1,2",
                "--warmup",
                "2",
                "--images",
                "4",
                "--forward-repeats",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads(out.read_text())
    assert {(r["server"], r["concurrency"]) for r in results["loads"]} == {
        ("api", 1),
        ("baseline", 1),
        ("api", 2),
        ("baseline", 2),
    }
    assert all(r["errors"] == 0 and r["p50_ms"] > 0 for r in results["loads"])
    assert [r["requests"] for r in results["loads"]] == [12, 6, 12, 6]
    assert [r["when"] for r in results["reference"]] == ["before c=1", "after c=1", "after c=2"]
    assert all(r["reference"]["single_forward_ms"] > 0 for r in results["loads"]) and results["commit"]
    assert results["machine"]["cpu_count"] >= 1 and len(results["ratios"]) == 2


class SlowPredictor:
    """Sleeps ``seconds_per_image`` per image, like a large model."""

    def __init__(self, seconds_per_image: float):
        self.seconds_per_image, self.calls = seconds_per_image, []

    def probabilities(self, images):
        self.calls.append(len(images))
        time.sleep(self.seconds_per_image * len(images))
        return [0.5] * len(images)


def test_measure_forward_runs_every_call_for_a_fast_model():
    predictor = SlowPredictor(0.0)
    result = forward.measure_forward(predictor, [b"a", b"b", b"c"], repeats=40, budget_s=60)
    assert result["single_calls"] == 40 and predictor.calls.count(1) == 40
    assert predictor.calls.count(8) == 4 and predictor.calls.count(32) == 4  # repeats // 10


def test_measure_forward_stops_at_the_time_budget_for_a_slow_model():
    predictor = SlowPredictor(0.002)  # 2 ms an image: 64 ms a batch of 32
    started = time.perf_counter()
    result = forward.measure_forward(predictor, [b"a"] * 4, repeats=200, budget_s=0.05)
    assert time.perf_counter() - started < 3
    assert 5 <= result["single_calls"] < 200  # at least 5 single calls, far fewer than asked
    assert predictor.calls.count(8) >= 3 and predictor.calls.count(32) == 3  # at least 3 batched calls
    assert 100 < result["batched_forward_ips"] <= 510 and 2 <= result["single_forward_ms"] < 20


def test_image_files_reads_a_folder_in_order_and_repeats_it(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.png").write_bytes(b"two")
    (tmp_path / "1.JPG").write_bytes(b"one")
    (tmp_path / "notes.txt").write_bytes(b"not an image")
    assert load.image_files(tmp_path, 5) == [b"one", b"two", b"one", b"two", b"one"]
    with pytest.raises(SystemExit, match="no images"):
        load.image_files(tmp_path / "b" / "empty-dir-that-does-not-exist", 1)


def test_servers_get_the_workers_and_threads_asked_for(tmp_path):
    args = script.parse_args(["--workers", "2", "--threads", "16", "--requests", "300"])
    assert args.workers == 2 and args.threads == 16 and args.baseline_requests == 50
    server = servers.Server("api", "app:create_app()", {}, "/readyz", args.threads, workers=args.workers)
    command = " ".join(server.command)
    server.log.unlink()
    assert "--workers 2 --threads 16" in command
    for server in (servers.api_server(tmp_path, 16, 2), servers.baseline_server(tmp_path, 16, 2)):
        command = " ".join(server.command)
        server.log.unlink()
        assert "--workers 2 --threads 16" in command and command.endswith(":create_app()")
    assert server.env["BASELINE_MODEL"] == str(tmp_path / "model.keras")


def test_the_load_client_does_not_import_tensorflow(tmp_path):
    assert_runs_without_tensorflow(
        "import aiclassify.benchmarks.runner, aiclassify.benchmarks.report, aiclassify.benchmarks.detection",
        tmp_path,
    )


def face_answer(faces_per_image: list[int | None], detection_ms: float | None = 12.5) -> bytes:
    """A ``/predict`` answer body with one prediction per entry: that many faces (None: not searched)."""
    predictions = []
    for count in faces_per_image:
        failed = count is None and detection_ms is not None
        predictions.append(
            {
                "faces": None if count is None else [{"box": [0, 0, 40, 40]}] * count,
                "timing_ms": {"face_detection": detection_ms},
                "warnings": [{"code": "face_detection_failed", "message": "x"}] if failed else [],
            }
        )
    return json.dumps({"predictions": predictions}).encode()


def test_face_figures_count_faces_detection_times_and_failed_searches():
    assert load.face_figures(face_answer([1, 3])) == (4, [12.5, 12.5], 0)
    assert load.face_figures(face_answer([None])) == (0, [12.5], 1)
    assert load.face_figures(face_answer([None], detection_ms=None)) == (0, [], 0)  # model=general


def test_face_ratio_rows_divide_auto_by_general_per_level():
    loads = [
        {"model": "general", "concurrency": 1, "throughput_rps": 40.0, "p50_ms": 20.0, "p95_ms": 30.0},
        {"model": "auto", "concurrency": 1, "throughput_rps": 8.0, "p50_ms": 110.0, "p95_ms": 240.0},
        {"model": "auto", "concurrency": 32, "throughput_rps": 9.0, "p50_ms": 3000.0, "p95_ms": 4000.0},
    ]
    assert report.face_ratio_rows(loads) == [
        {
            "concurrency": 1,
            "throughput_auto_over_general": 0.2,
            "p50_auto_over_general": 5.5,
            "p95_auto_over_general": 8.0,
        }
    ]  # no general load at 32: no row


def test_face_uploads_mix_one_face_photos_and_group_photos(tmp_path):
    from PIL import Image

    from aiclassify.benchmarks import detection

    files = {"real": [], "fake": []}
    for label, colour in (("real", (200, 150, 120)), ("fake", (90, 120, 200))):
        for i in range(2):
            path = tmp_path / f"{label}-{i}.jpg"
            Image.new("RGB", (256, 256), colour).save(path)
            files[label].append(path)
    uploads = detection.face_uploads(files, 2 * detection.GROUP_EVERY)
    assert len(uploads) == 2 * detection.GROUP_EVERY
    sizes = [Image.open(io.BytesIO(upload)).size for upload in uploads]
    groups = [i for i, size in enumerate(sizes) if size == detection.GROUP_PHOTO_SIZE]
    assert groups == [detection.GROUP_EVERY - 1, 2 * detection.GROUP_EVERY - 1]
    singles = [u for i, u in enumerate(uploads) if i not in groups]
    order = [files["real"][0], files["fake"][0], files["real"][1], files["fake"][1]]
    assert singles[:4] == [path.read_bytes() for path in order]  # real and fake in turn, as on disk
    # Without face data: demo JPEGs and noise of the same sizes.
    fallback = detection.face_uploads({}, detection.GROUP_EVERY)
    sizes = [Image.open(io.BytesIO(upload)).size for upload in fallback]
    assert sizes == [(256, 256)] * (detection.GROUP_EVERY - 1) + [detection.GROUP_PHOTO_SIZE]


def test_face_mode_options():
    args = script.parse_args(["--faces", "runs/demo", "--detection-sizes", "256,1024", "--levels", "1,32"])
    assert str(args.faces) == "runs/demo" and args.detection_sizes == [256, 1024] and args.levels == [1, 32]
    assert script.parse_args([]).detection_sizes == [256, 1024, 4000]
    with pytest.raises(SystemExit):
        script.parse_args(["--faces", "runs/demo", "--fault-rate", "0.1"])
    with pytest.raises(SystemExit):
        script.parse_args(["--detection-sizes", "8"])


def test_a_missing_face_run_fails_with_a_clear_message(tmp_path, capsys):
    general = tmp_path / "general"
    (general / "saved_model").mkdir(parents=True)
    (general / "metadata.json").write_text("{}")
    (general / "model.keras").write_bytes(b"")
    assert script.main(["--run", str(general), "--faces", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert "nothing has no metadata.json, saved_model, model.keras" in error and "make demo" in error


@pytest.mark.slow
def test_face_mode_end_to_end_on_a_tiny_model(tiny_run, tmp_path, capsys):
    """The face path under gunicorn: detection latency, then model=general and model=auto at
    concurrency 1 and 2 (about a minute). With ../shared/data/faces.tar.gz it sends real face photos
    and checks that model=auto scores their faces; without it, the face-free fallback (demo JPEGs and
    noise), in which the auto path searches and finds none."""
    out = tmp_path / "faces.json"
    argv = ["--run", str(tiny_run), "--faces", str(tiny_run), "--requests", "8", "--levels", "1,2"]
    argv += ["--warmup", "1", "--images", "8", "--detection-repeats", "1", "--out", str(out)]
    assert script.main(argv) == 0
    results = json.loads(out.read_text())
    latency = results["detection"]["latency"]
    assert [row["longer_side"] for row in latency] == [256, 1024, 4000]
    assert all(row["median_ms"] > 0 and row["first_call_ms"] > 0 for row in latency)
    loads = {(row["model"], row["concurrency"]): row for row in results["face_loads"]}
    assert set(loads) == {("general", 1), ("auto", 1), ("general", 2), ("auto", 2)}
    for row in loads.values():
        assert row["requests"] == 8 and row["errors"] == 0 and row["face_searches_failed"] == 0
        assert row["p50_ms"] > 0 and row["p95_ms"] >= row["p50_ms"] and row["throughput_rps"] > 0
    assert all(loads[("general", c)]["faces_per_request"] == 0 for c in (1, 2))
    assert all(loads[("auto", c)]["server_detection_p50_ms"] > 0 for c in (1, 2))
    ratios = results["face_ratios"]
    assert [row["concurrency"] for row in ratios] == [1, 2]
    assert all(row["throughput_auto_over_general"] > 0 for row in ratios)
    real_faces = script.SHARED_FACES.is_file()
    if real_faces:  # 7 one-face photos and a 3-face group photo: 10 faces in 8 requests
        assert all(row["faces_found"] == 1 for row in latency)
        assert all(loads[("auto", c)]["faces_per_request"] == pytest.approx(10 / 8) for c in (1, 2))
    else:
        assert all(loads[("auto", c)]["faces_per_request"] == 0 for c in (1, 2))
    printed = capsys.readouterr().out
    assert "throughput_auto_over_general" in printed and "faces_per_request" in printed
    assert "first_call_ms" in printed
