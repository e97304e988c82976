"""One whole serving benchmark: start the servers and the forward reference, load each level, collect."""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aiclassify.benchmarks.detection import GROUP_EVERY, face_uploads, find_face_photos, measure_in_child
from aiclassify.benchmarks.faults import DEFAULT_MAX_UPLOAD_MB, run_fault_load
from aiclassify.benchmarks.forward import ForwardReference, reference_between
from aiclassify.benchmarks.load import run_load, upload_images
from aiclassify.benchmarks.report import face_ratio_rows, git_commit, goal_rows, machine, ratio_rows
from aiclassify.benchmarks.servers import Server, api_server, baseline_server, face_api_server

DEFAULT_THREADS = 32  # as `make serve`: measured best on 2 cores (docs/performance.md)
DETECTION_SIZES = (256, 1024, 4000)  # longer sides of the detection latency scenes, px
FACE_MODES = ("general", "auto")  # the face mode's loads: the whole image alone, then with its faces
RUN_FILES = ("metadata.json", "saved_model", "model.keras")
# An error line of the app's log ("2026-01-02 03:04:05,678 ERROR ..."), of gunicorn's, or a traceback.
LOGGED_ERROR = re.compile(
    r"^(\d{4}-\d\d-\d\d [\d:,]+ (ERROR|CRITICAL) |\[[^]]+\] \[\d+\] \[(ERROR|CRITICAL)\]|Traceback)"
)


@dataclass
class BenchmarkOptions:
    """What to measure and how; the fields mirror the options of ``scripts/bench_serve.py``.

    ``baseline_requests`` defaults to a tenth of ``requests`` (at least 50), ``image_size`` to the
    model's input; ``workdir`` is where the servers run and the git commit is read (default: the
    current folder).
    """

    run: Path
    requests: int = 2000
    baseline_requests: int | None = None
    levels: list[int] = field(default_factory=lambda: [1, 8, 32])
    threads: int = DEFAULT_THREADS
    workers: int = 1
    warmup: int = 64
    images: int = 64
    image_size: int | None = None
    image_dir: Path | None = None
    forward_repeats: int = 200
    forward_seconds: float = 5.0
    baseline: bool = True
    workdir: Path | None = None
    fault_rate: float = 0.0  # above 0: the fault-tolerance load instead (run_fault_benchmark)
    fault_seed: int = 0
    faces_run: Path | None = None  # set: the face-path load instead (run_face_benchmark), run = general
    face_data: Path | None = None  # the 140k faces sample (default: face_archive extracted)
    face_archive: Path | None = None  # faces.tar.gz, extracted when face_data is not given
    detection_sizes: list[int] = field(default_factory=lambda: list(DETECTION_SIZES))
    detection_repeats: int = 5

    def __post_init__(self):
        """Fill in the default baseline request count."""
        self.baseline_requests = self.baseline_requests or max(50, self.requests // 10)


def missing_run_files(run: Path) -> list[str]:
    """The files a benchmarked run needs (metadata, SavedModel, ``model.keras``) that ``run`` lacks."""
    return [name for name in RUN_FILES if not (run / name).exists()]


def run_levels(
    options: BenchmarkOptions,
    servers: dict[str, Server],
    forward: ForwardReference,
    images: list[bytes],
    references: list[dict],
    loads: list[dict],
) -> None:
    """Per concurrency level: a reference measurement, then the API's load, then the baseline's."""
    references.append(forward.measure(f"before c={options.levels[0]}"))
    for concurrency in options.levels:
        level = []
        for name, server in servers.items():
            total = options.requests if name == "api" else options.baseline_requests
            run_load(server.port, images, options.warmup, concurrency)
            cpu_before = server.cpu_seconds()
            load = run_load(server.port, images, total, concurrency)
            load["server_cpu_fraction"] = (server.cpu_seconds() - cpu_before) / load["wall_s"]
            load.update(server=name, concurrency=concurrency, loadavg_1m=os.getloadavg()[0])
            level.append(load)
            print(
                f"{name:<8} c={concurrency:<3} {load['requests']} requests, {load['errors']} errors, "
                f"p50 {load['p50_ms']:.1f} ms, {load['throughput_rps']:.1f} req/s",
                flush=True,
            )
        references.append(forward.measure(f"after c={concurrency}"))
        for load in level:
            load["reference"] = reference_between(references[-2], references[-1])
        loads += level


def run_benchmark(options: BenchmarkOptions) -> dict:
    """Run the benchmark on ``options.run`` (which must have :data:`RUN_FILES`); the results.

    Both servers and the forward reference process are stopped at the end, also on errors and
    Ctrl-C (the ``KeyboardInterrupt`` is raised again). The results hold ``date``, ``machine``,
    ``commit``, ``settings``, ``reference`` (forward measurements), ``loads``, ``ratios`` and ``goals``.
    """
    run = options.run
    image_size = int(json.loads((run / "metadata.json").read_text())["image_size"])
    options.image_size = options.image_size or image_size
    images = upload_images(options.image_dir, options.image_size, options.images)
    servers = {"api": api_server(run, options.threads, options.workers, options.workdir)}
    if options.baseline:
        servers["baseline"] = baseline_server(run, options.threads, options.workers, options.workdir)
    settings = {
        "run": str(run),
        "model_input": image_size,
        "uploads": str(options.image_dir) if options.image_dir else f"demo JPEGs, {options.image_size} px",
        "upload_bytes_mean": statistics.fmean(len(image) for image in images),
        "levels": options.levels,
        "requests": options.requests,
        "baseline_requests": options.baseline_requests,
        "warmup": options.warmup,
        "gunicorn": f"--workers {options.workers} --threads {options.threads}",
        "max_batch_size": os.environ.get("AICLASSIFY_MAX_BATCH_SIZE", "32"),
        "max_batch_wait_ms": os.environ.get("AICLASSIFY_MAX_BATCH_WAIT_MS", "5"),
        "forward_repeats": options.forward_repeats,
        "forward_seconds": options.forward_seconds,
        "client": "Python threads, one keep-alive http.client connection each, "
        "a new multipart boundary per request",
    }
    references, loads, forward = [], [], None
    try:
        for server in servers.values():
            server.start()
        forward = ForwardReference(
            run,
            options.image_size,
            options.forward_repeats,
            options.forward_seconds,
            image_dir=options.image_dir,
            workdir=options.workdir,
        )
        for server in servers.values():
            server.wait_ready()
        run_levels(options, servers, forward, images, references, loads)
    finally:
        if forward is not None:
            forward.close()
        for server in servers.values():
            server.stop()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": git_commit(options.workdir),
        "settings": settings,
        "reference": references,
        "loads": loads,
        "ratios": ratio_rows(loads),
        "goals": goal_rows(loads),
    }


def server_log_errors(server: Server) -> int:
    """Lines of the server's log that report an error (the app's logging or gunicorn's) or start a
    traceback; 0 when the log is gone."""
    try:
        lines = server.log.read_text(errors="replace").splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if LOGGED_ERROR.match(line))


def run_fault_benchmark(options: BenchmarkOptions) -> dict:
    """The fault-tolerance load on the API alone (no baseline, no forward reference): per level of
    ``options.levels``, ``options.warmup`` clean requests, then ``options.requests`` requests of which
    a share ``options.fault_rate`` are faulty (:mod:`~aiclassify.benchmarks.faults`).

    The uploads over the limit are sized from ``AICLASSIFY_MAX_UPLOAD_MB``, which the server reads
    too. The results hold ``date``, ``machine``, ``commit``, ``settings`` and ``fault_loads``.
    """
    run = options.run
    model_input = int(json.loads((run / "metadata.json").read_text())["image_size"])
    options.image_size = options.image_size or model_input
    uploads = str(options.image_dir) if options.image_dir else f"demo JPEGs, {options.image_size} px"
    images = upload_images(options.image_dir, options.image_size, options.images)
    max_upload_mb = float(os.environ.get("AICLASSIFY_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB))
    server = api_server(run, options.threads, options.workers, options.workdir)
    loads = []
    try:
        server.start()
        server.wait_ready()
        for concurrency in options.levels:
            run_load(server.port, images, options.warmup, concurrency)
            load = run_fault_load(
                server.port,
                images,
                options.requests,
                concurrency,
                options.fault_rate,
                options.fault_seed,
                max_upload_mb,
            )
            load["server_log_errors"] = server_log_errors(server)
            loads.append(load)
            print(
                f"faults   c={concurrency:<3} {load['requests']} requests ({load['faulty_sent']} faulty), "
                f"{load['valid_lost']} of {load['valid_sent']} valid lost, "
                f"{load['server_errors_seen']} 5xx seen, {load['server_errors_counted']} counted by the "
                "server",
                flush=True,
            )
    finally:
        server.stop()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": git_commit(options.workdir),
        "settings": {
            "run": str(run),
            "model_input": model_input,
            "uploads": uploads,
            "levels": options.levels,
            "requests": options.requests,
            "fault_rate": options.fault_rate,
            "fault_seed": options.fault_seed,
            "max_upload_mb": max_upload_mb,
            "warmup": options.warmup,
            "gunicorn": f"--workers {options.workers} --threads {options.threads}",
        },
        "fault_loads": loads,
    }


def run_face_benchmark(options: BenchmarkOptions) -> dict:
    """The face path on the API alone (no baseline, no forward reference): ``options.faces_run``
    served as model ``faces`` and ``options.run`` as ``general``, face detection on.

    Once the server is ready (and idle), the bare detection latency at each of
    ``options.detection_sizes`` (:func:`~aiclassify.benchmarks.detection.measure_in_child`, the
    measurement of ``scripts/bench_faces.py``, with the server's detector limits); then per level of
    ``options.levels``, ``options.warmup`` uncounted requests and ``options.requests`` counted ones
    with ``model=general`` (the whole image, no face search), then the same with ``model=auto`` (the
    whole image and every face found). The uploads are ``options.image_dir``'s images when given,
    else :func:`~aiclassify.benchmarks.detection.face_uploads` of the faces sample (one-face photos,
    every :data:`~aiclassify.benchmarks.detection.GROUP_EVERY`-th a three-face group photo; demo
    JPEGs and noise, in which no face is found, when the sample is absent). The server is stopped at
    the end, also on errors and Ctrl-C. The results hold ``date``, ``machine``, ``commit``,
    ``settings``, ``detection`` (``detector_load_s``, ``limits``, ``latency`` rows), ``face_loads``
    and ``face_ratios``.
    """
    files, source = find_face_photos(options.face_data, options.face_archive)
    if options.image_dir:
        images = upload_images(options.image_dir, 256, options.images)
        uploads = str(options.image_dir)
    else:
        images = face_uploads(files, options.images)
        uploads = (
            f"faces sample ({source}): 256 px photos, every {GROUP_EVERY}th a 3-face 1200x500 group photo"
            if files
            else f"no face data: 256 px demo JPEGs, every {GROUP_EVERY}th 1200x500 noise (no faces)"
        )
    photo = files["real"][0] if files.get("real") else None
    server = face_api_server(
        options.faces_run, options.run, options.threads, options.workers, options.workdir
    )
    loads = []
    try:
        server.start()
        server.wait_ready()
        status, body = server.get("/v1/faces")
        if status != 200 or not json.loads(body)["available"]:
            raise RuntimeError(f"model=auto is not available on the server: HTTP {status}: {body[:500]!r}")
        detection = measure_in_child(
            options.detection_sizes, options.detection_repeats, photo, options.workdir
        )
        for row in detection["latency"]:
            print(
                f"detect   {row['longer_side']:>5} px  {row['faces_found']} faces, median "
                f"{row['median_ms']:.0f} ms, first call {row['first_call_ms']:.0f} ms",
                flush=True,
            )
        for concurrency in options.levels:
            for model in FACE_MODES:
                path = f"/predict?model={model}"
                run_load(server.port, images, options.warmup, concurrency, path=path)
                cpu_before = server.cpu_seconds()
                load = run_load(server.port, images, options.requests, concurrency, path=path, faces=True)
                load["server_cpu_fraction"] = (server.cpu_seconds() - cpu_before) / load["wall_s"]
                load.update(model=model, concurrency=concurrency, loadavg_1m=os.getloadavg()[0])
                loads.append(load)
                print(
                    f"{model:<8} c={concurrency:<3} {load['requests']} requests, {load['errors']} errors, "
                    f"p50 {load['p50_ms']:.1f} ms, {load['throughput_rps']:.2f} req/s, "
                    f"{load['faces_per_request']:.2f} faces per request",
                    flush=True,
                )
    finally:
        server.stop()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": git_commit(options.workdir),
        "settings": {
            "faces_run": str(options.faces_run),
            "general_run": str(options.run),
            "uploads": uploads,
            "upload_bytes_mean": statistics.fmean(len(image) for image in images),
            "detection_photo": str(photo) if photo else "none (noise scenes)",
            "levels": options.levels,
            "requests": options.requests,
            "warmup": options.warmup,
            "gunicorn": f"--workers {options.workers} --threads {options.threads}",
            "max_batch_size": os.environ.get("AICLASSIFY_MAX_BATCH_SIZE", "32"),
            "max_batch_wait_ms": os.environ.get("AICLASSIFY_MAX_BATCH_WAIT_MS", "5"),
        },
        "detection": detection,
        "face_loads": loads,
        "face_ratios": face_ratio_rows(loads),
    }
