"""Face detection latency, and the face photos the benchmarks use.

Shared by ``scripts/bench_faces.py`` and the face mode of ``scripts/bench_serve.py``:
:func:`detection_latency` times a :class:`~aiclassify.faces.FaceDetector` on scenes of each longer
side (:func:`latency_scene`: one face photo pasted on noise); :func:`find_face_photos` lists the
photos of the 140k faces sample per class; :func:`face_uploads` builds the uploads of the serving
benchmark's face mode (one-face photos, and every :data:`GROUP_EVERY`-th a three-face group photo).
:func:`measure_in_child` runs :func:`detection_latency` in a child process
(``python -m aiclassify.benchmarks.detection``) with the detector limits the server reads from its
``AICLASSIFY_*`` settings, so that the load client never imports TensorFlow. Importing this module
imports neither TensorFlow nor mtcnn.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aiclassify.benchmarks.load import demo_images
from aiclassify.data.layouts import class_dirs, find_dataset_root, list_images, split_dirs
from aiclassify.faces.measure import load_rgb, paste_photos

MAX_PASTED_SIDE = 480  # the photo pasted in a latency scene: a face box of about 240 x 300 px
LATENCY_COLUMNS = ["longer_side", "scene", "faces_found", "first_call_ms", "median_ms", "max_ms", "repeats"]
GROUP_PHOTO_SIZE = (1200, 500)
GROUP_PHOTO_PLACES = ((40, 90, 330), (430, 40, 400), (880, 120, 290))
"""Where a group photo's three face photos are pasted, ``(x, y, side)`` each, left to right (the
composite of the API's face-path tests)."""
GROUP_EVERY = 8  # of the face mode's uploads, every 8th is a group photo (3 faces), the others one face
CHILD_TIMEOUT_S = 600


def latency_scene(side: int, photo: np.ndarray | None) -> tuple[np.ndarray, str]:
    """A ``side`` x ``3 side / 4`` scene of noise with ``photo`` pasted in its middle (its side 3/4 of
    the scene's height, at most :data:`MAX_PASTED_SIDE`), or noise alone when ``photo`` is None;
    and its description."""
    width, height = side, round(side * 3 / 4)
    if photo is None:
        return paste_photos((width, height), [], []), f"{width}x{height} noise"
    pasted = min(height, MAX_PASTED_SIDE)
    place = ((width - pasted) // 2, (height - pasted) // 2, pasted)
    return paste_photos((width, height), [photo], [place]), f"{width}x{height}, {pasted} px photo"


def detection_latency(detector, sizes: list[int], repeats: int, photo: np.ndarray | None) -> list[dict]:
    """One row per longer side of ``sizes``: ``detector.detect`` on :func:`latency_scene`, the first
    call apart, then the median and the worst of ``repeats`` calls, and the faces found."""
    rows = []
    for side in sizes:
        scene, what = latency_scene(side, photo)
        timings, found = [], None
        for _ in range(repeats + 1):
            started = time.perf_counter()
            found = len(detector.detect(scene))
            timings.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "longer_side": side,
                "scene": what,
                "faces_found": found,
                "first_call_ms": timings[0],
                "median_ms": statistics.median(timings[1:]),
                "max_ms": max(timings[1:]),
                "repeats": repeats,
            }
        )
    return rows


def find_face_photos(data: Path | None, archive: Path | None) -> tuple[dict[str, list[Path]], str]:
    """The image files per class (``real``, ``fake``; all splits, by path) of ``data`` (a folder
    holding ``real`` and ``fake`` folders, with or without split folders), else of ``archive``
    (faces.tar.gz) extracted once to a temporary folder; and where they came from (``none`` and
    no files when neither is there)."""
    source = str(data)
    if data is None:
        if archive is None or not archive.is_file():
            return {}, "none"
        data, source = Path(tempfile.gettempdir()) / "aiclassify-bench-faces", str(archive)
        if not (data / "faces").is_dir():
            with tarfile.open(archive) as bundle:
                bundle.extractall(data, filter="data")
    root = find_dataset_root(data)
    folders = [class_dirs(split) for split in (split_dirs(root) or {"all": root}).values()]
    return {
        label: sorted(Path(p) for f in folders for p in list_images(f[label])) for label in ("real", "fake")
    }, source


def jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    """``pixels`` (RGB uint8) as a JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def group_photo(photos: list[np.ndarray]) -> bytes:
    """A :data:`GROUP_PHOTO_SIZE` JPEG of the three ``photos`` pasted at :data:`GROUP_PHOTO_PLACES`."""
    return jpeg(paste_photos(GROUP_PHOTO_SIZE, photos, GROUP_PHOTO_PLACES))


def face_uploads(files: dict[str, list[Path]], count: int) -> list[bytes]:
    """``count`` uploads of the face mode: the photos of ``files`` (real and fake in turn) as they
    are on disk, except every :data:`GROUP_EVERY`-th, a :func:`group_photo` of the next three real
    photos. Without photos (no face data): 256 px demo JPEGs, and noise scenes of the group photo's
    size, in which no face is found."""
    real, fake = files.get("real", []), files.get("fake", [])
    paired = [path for pair in zip(real, fake, strict=False) for path in pair]
    singles = paired + real[len(fake) :] + fake[len(real) :]
    demo = [] if singles else demo_images(GROUP_EVERY - 1, 256)
    uploads, groups = [], 0
    for i in range(count):
        if (i + 1) % GROUP_EVERY == 0:
            if real:
                photos = [load_rgb(real[(3 * groups + k) % len(real)]) for k in range(3)]
                uploads.append(group_photo(photos))
            else:
                uploads.append(jpeg(paste_photos(GROUP_PHOTO_SIZE, [], [], seed=groups)))
            groups += 1
        elif singles:
            uploads.append(singles[(i - groups) % len(singles)].read_bytes())
        else:
            uploads.append(demo[(i - groups) % len(demo)])
    return uploads


def measure_in_child(sizes: list[int], repeats: int, photo: Path | None, workdir: Path | None = None) -> dict:
    """:func:`detection_latency` in a child process, with a detector built from the server's face
    settings (``AICLASSIFY_MAX_FACES`` and the others, read from this environment) and ``photo``
    pasted (None: noise alone): ``detector_load_s``, ``limits`` and ``latency`` (the rows)."""
    command = [sys.executable, "-m", "aiclassify.benchmarks.detection", "--sizes", ",".join(map(str, sizes))]
    command += ["--repeats", str(repeats)] + (["--photo", str(photo)] if photo else [])
    result = subprocess.run(
        command,
        cwd=workdir,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"the detection latency process exited with {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """The child process of :func:`measure_in_child` (not meant to be run by hand): one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--photo", type=Path)
    args = parser.parse_args(argv)
    from aiclassify.faces import FaceDetector
    from aiclassify.serving.settings import load_settings

    settings = load_settings()
    limits = {
        "max_faces": settings.max_faces,
        "min_face_size": settings.min_face_size,
        "min_confidence": settings.min_face_confidence,
        "max_search_side": settings.max_face_search_side,
    }
    started = time.perf_counter()
    detector = FaceDetector(**limits)
    load_s = time.perf_counter() - started
    photo = load_rgb(args.photo) if args.photo else None
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = detection_latency(detector, sizes, args.repeats, photo)
    print(json.dumps({"detector_load_s": load_s, "limits": limits, "latency": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
