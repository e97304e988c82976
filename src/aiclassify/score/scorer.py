"""Score every image file under a folder into a CSV or JSON-lines file, resumably.

:func:`score_folder` lists the image files under the folder (:func:`find_images`: by suffix, sorted,
hidden files and folders left out), opens the output (:func:`aiclassify.score.writers.open_results`:
the files it already has a row for are not scored again, a partial last line left by a kill is cut
off, and a file written for another run or threshold is refused), then scores the rest a batch at a
time and appends each batch's rows as soon as they are scored (:mod:`aiclassify.score.rows`).

The local engine overlaps the two stages of the one inference path as the API does: worker threads
read, check and prepare the next batches (:func:`aiclassify.score.rows.load_images`: decoding,
warnings, metadata evidence) while the calling thread runs the model on the current one. The Ray
engine (:mod:`aiclassify.score.distributed`) scores the batches in actors instead; either way this
process writes the rows, in file order.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiclassify.predict import Predictor
from aiclassify.score.rows import Provenance, load_images, scored_rows
from aiclassify.score.writers import open_results, results_format

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif", ".mpo", ".tif", ".tiff"}
)
"""Files scored (case-insensitive); a TIFF is listed with the error that its format is not served."""
ENGINES = ("local", "ray")
LOAD_THREADS = 4  # batches read and prepared ahead of the model (measured: docs/performance.md)


@dataclass(frozen=True)
class ScoreSummary:
    """What one call of :func:`score_folder` did."""

    out: Path
    found: int  # image files under the folder (at most ``limit``)
    already_done: int  # of those, files the output already had a row for
    scored: int  # rows written now
    errors: int  # of those, files listed with an error
    earlier_errors: int  # rows with an error the output already held
    ignored: int  # files under the folder without an image suffix
    dropped_bytes: int  # partial last line cut off the output
    seconds: float  # scoring, after the model was loaded

    @property
    def images_per_second(self) -> float:
        """Rows written per second of scoring."""
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for people."""
        text = (
            f"scored {self.scored} images ({self.errors} could not be scored) into {self.out} "
            f"in {self.seconds:.1f} s ({self.images_per_second:.1f} images/s); "
            f"{self.already_done} already there ({self.earlier_errors} with an error)"
        )
        if self.ignored:
            text += f"; {self.ignored} files without an image suffix ignored"
        if self.dropped_bytes:
            text += f"; cut off a partial last line of {self.dropped_bytes} bytes left by an interrupted run"
        return text


def find_images(folder: Path, recursive: bool = True) -> tuple[list[Path], int]:
    """The image files under ``folder`` (by :data:`IMAGE_SUFFIXES`), sorted by their path below it,
    and how many other files there are. Names starting with ``.`` are left out; symbolic links to
    folders are not followed."""
    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise ValueError(f"The folder to score does not exist or is not a folder. Received: folder={folder}")
    found, ignored = [], 0
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")] if recursive else []
        for name in files:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(directory, name))
            else:
                ignored += 1
    return sorted(found, key=lambda path: path.relative_to(folder).parts), ignored


def score_folder(
    folder: str | Path,
    run: str | Path | Predictor,
    out: str | Path,
    *,
    batch_size: int = 64,
    operating_point: str | None = None,
    target_fpr: float | None = None,
    recursive: bool = True,
    limit: int | None = None,
    engine: str = "local",
    workers: int = 2,
    progress: bool = True,
) -> ScoreSummary:
    """Score the image files under ``folder`` with ``run`` into ``out`` (``.csv`` or ``.jsonl``),
    skipping those ``out`` already has a row for.

    ``run``: a run directory or model folder, or a :class:`~aiclassify.predict.Predictor` loaded from
    one (its ``source`` names it in the rows). ``operating_point``/``target_fpr``: a stored operating
    point instead of the default threshold. ``limit``: only the first that many files (in the sorted
    order, counting those already scored). ``engine``: ``local`` (this process) or ``ray``
    (``workers`` actors, one predictor each; :mod:`aiclassify.score.distributed`).
    """
    out = Path(out)
    results_format(out)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1. Received: batch_size={batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more. Received: limit={limit}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}. Received: engine={engine}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1. Received: workers={workers}")
    paths, ignored = find_images(Path(folder), recursive)
    paths = paths[:limit] if limit is not None else paths
    predictor = run if isinstance(run, Predictor) else Predictor.load(run, batch_size=batch_size)
    if predictor.source is None:
        raise ValueError("The predictor must be loaded from a run directory or model folder (no source).")
    threshold, point = predictor.threshold_for(target_fpr, operating_point)
    provenance = Provenance(str(Path(predictor.source).absolute()), threshold, point)

    writer, existing = open_results(out, provenance)
    with writer:
        todo = [str(path) for path in paths if writer.key(str(path)) not in existing.paths]
        if engine == "ray":
            from aiclassify.score.distributed import ray_batches

            batches = ray_batches(provenance, todo, batch_size, workers, target_fpr, operating_point)
        else:
            batches = local_batches(predictor, todo, batch_size, provenance)
        started = time.perf_counter()
        scored = errors = 0
        with _progress(len(todo), progress) as bar:
            for rows in batches:
                writer.write(rows)
                scored += len(rows)
                errors += sum(row["error"] is not None for row in rows)
                bar.update(len(rows))
    return ScoreSummary(
        out,
        len(paths),
        len(paths) - len(todo),
        scored,
        errors,
        existing.errors,
        ignored,
        existing.dropped_bytes,
        time.perf_counter() - started,
    )


def local_batches(
    predictor: Predictor,
    paths: Sequence[str],
    batch_size: int,
    provenance: Provenance,
    threads: int = LOAD_THREADS,
) -> Iterator[list[dict]]:
    """The rows of ``paths``, one list per batch, in order: ``threads`` worker threads load the next
    batches while this thread scores the current one."""
    chunks = (paths[start : start + batch_size] for start in range(0, len(paths), batch_size))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="score-load") as pool:
        pending: deque[Future] = deque()
        for chunk in chunks:
            pending.append(pool.submit(load_images, predictor, chunk))
            if len(pending) > threads:
                yield scored_rows(predictor, pending.popleft().result(), provenance)
        while pending:
            yield scored_rows(predictor, pending.popleft().result(), provenance)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="image", desc="scoring", disable=not enabled, smoothing=0.1)
