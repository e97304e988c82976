"""The servers the benchmark starts: the inference API and the baseline, each one gunicorn on 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 300  # two gunicorn workers importing TensorFlow at once on 2 busy cores
API_APP = "aiclassify.serving.app:create_app()"  # the API as `make serve` runs it
GUNICORN_CONFIG = "aiclassify.serving.gunicorn_config"  # the gunicorn settings `make serve` uses
BASELINE_APP = "aiclassify.benchmarks.baseline_app:create_app()"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One gunicorn process on 127.0.0.1, started by :meth:`start` and always ended by :meth:`stop`.

    ``workdir`` is the working directory of gunicorn (default: the current one).
    """

    def __init__(
        self,
        name: str,
        app: str,
        env: dict[str, str],
        ready_path: str,
        threads: int,
        extra: tuple[str, ...] = (),
        workers: int = 1,
        workdir: Path | None = None,
    ):
        self.name, self.ready_path, self.port = name, ready_path, free_port()
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            *extra,
            app,
        ]
        self.env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
        self.workdir = workdir
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Launch gunicorn (does not wait)."""
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                self.command, cwd=self.workdir, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll ``ready_path`` until it answers 200; raise with the log tail if gunicorn dies or stalls."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: gunicorn exited with {self.process.returncode}:\n"
                    f"{self.log.read_text()[-3000:]}"
                )
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", self.ready_path)
                if connection.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: not ready in {timeout_s:.0f} s:\n{self.log.read_text()[-3000:]}")

    def get(self, path: str) -> tuple[int, bytes]:
        """``GET path``: the status and the body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the gunicorn master and its workers so far (Linux /proc)."""
        total, pids = 0.0, [self.process.pid]
        while pids:
            pid = pids.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
        return total

    def stop(self) -> None:
        """Terminate gunicorn (kill after 15 s) and remove its log."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.unlink(missing_ok=True)


def api_server(run: Path, threads: int, workers: int = 1, workdir: Path | None = None) -> Server:
    """The inference API serving ``run`` as model ``bench``, ready once ``/readyz`` answers 200, with
    the gunicorn settings it is deployed with (:mod:`aiclassify.serving.gunicorn_config`)."""
    return Server(
        "api",
        API_APP,
        {"AICLASSIFY_MODELS": f"bench={run}"},
        "/readyz",
        threads,
        extra=("--config", f"python:{GUNICORN_CONFIG}"),
        workers=workers,
        workdir=workdir,
    )


def face_api_server(
    faces_run: Path, general_run: Path, threads: int, workers: int = 1, workdir: Path | None = None
) -> Server:
    """The inference API serving ``faces_run`` as model ``faces`` and ``general_run`` as ``general``
    with face detection on, so that ``model=auto`` searches every upload for faces; ready once
    ``/readyz`` answers 200 (models and face detector loaded). The detector's limits are the
    ``AICLASSIFY_*`` face settings of this environment."""
    env = {
        "AICLASSIFY_MODELS": f"faces={faces_run},general={general_run}",
        "AICLASSIFY_FACE_MODEL": "faces",
        "AICLASSIFY_GENERAL_MODEL": "general",
        "AICLASSIFY_FACE_DETECTION": "1",
    }
    return Server(
        "api",
        API_APP,
        env,
        "/readyz",
        threads,
        extra=("--config", f"python:{GUNICORN_CONFIG}"),
        workers=workers,
        workdir=workdir,
    )


def baseline_server(run: Path, threads: int, workers: int = 1, workdir: Path | None = None) -> Server:
    """The baseline app (:mod:`aiclassify.benchmarks.baseline_app`) on ``run``'s ``model.keras``."""
    return Server(
        "baseline",
        BASELINE_APP,
        {"BASELINE_MODEL": str(run / "model.keras")},
        "/healthz",
        threads,
        workers=workers,
        workdir=workdir,
    )
