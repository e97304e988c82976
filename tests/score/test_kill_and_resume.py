"""The score command killed with SIGKILL mid-run, then run again: every image once, nothing rescored."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from builders import image_writer
from conftest import REPO

IMAGES = 300
BATCH = 4
KILL_AFTER_ROWS = 40
write_image = image_writer(100)


def score_command(folder, run, out) -> list[str]:
    command = [sys.executable, "-m", "aiclassify", "score", str(folder), "--run", str(run)]
    return [*command, "--out", str(out), "--batch-size", str(BATCH), "--no-progress"]


def rows_in(out) -> int:
    return out.read_bytes().count(b"\n") - 1 if out.exists() else 0  # less the header


@pytest.mark.slow  # two subprocesses
def test_a_killed_run_resumes_without_rescoring(tiny_run, tmp_path):
    folder = tmp_path / "images"
    (folder / "000-broken.jpg").parent.mkdir(parents=True)
    (folder / "000-broken.jpg").write_text("not an image")  # in the first batch: listed, never retried
    for index in range(IMAGES):
        write_image(folder / f"{index:04d}.png", size=(32, 32))
    out = tmp_path / "results.csv"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = score_command(folder, tiny_run, out)
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while rows_in(out) < KILL_AFTER_ROWS and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the first run ended before it could be killed"
    killed = out.read_bytes()
    complete = killed[: killed.rfind(b"\n") + 1]
    done = complete.count(b"\n") - 1
    assert KILL_AFTER_ROWS <= done < IMAGES + 1

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 1, second.stderr[-2000:]  # 000-broken.jpg stays listed
    summary = second.stdout.strip().splitlines()[-1]
    found = re.search(r"scored (\d+) images .* (\d+) already there \(1 with an error\)", summary)
    assert found and (int(found[1]), int(found[2])) == (IMAGES + 1 - done, done)
    assert out.read_bytes().startswith(complete)  # earlier rows kept byte for byte, not rewritten
    paths = [line.split(",", 1)[0] for line in out.read_text().splitlines()[1:]]
    assert sorted(paths) == sorted(str(path) for path in folder.iterdir())
    assert len(paths) == len(set(paths)) == IMAGES + 1
