"""The Ray engine of the score command: batches scored by Ray Data actors, one predictor each.

``aiclassify score DIR --run R --out F --engine ray --workers N`` hands the file paths still to score
to a Ray dataset and maps its batches through :class:`BatchScorer`, a callable class: Ray starts
``N`` actors, each loads the run once (:meth:`aiclassify.predict.Predictor.load`) and scores its
batches with the same two functions as the local engine (:func:`aiclassify.score.rows.load_images`,
:func:`aiclassify.score.rows.scored_rows`). The rows come back to this process in file order
(``preserve_order``), which writes them with the same writer, so the output, the resume and the
error listing are those of the local engine.

Ray is an optional extra (``pip install 'aiclassify[ray]'``), imported only here, when the engine is
asked for. Without ``RAY_ADDRESS`` Ray starts a local cluster in this process for the run and stops
it after; with it (``RAY_ADDRESS=host:6379``, or ``auto`` on a node of the cluster) it joins that
cluster. The actors read the image files and the run by path, so on a cluster both must be at the
same path on every node (a shared file system).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from aiclassify.score.rows import Provenance, load_images, scored_rows

EXTRA = "ray"
ROW_COLUMN = "row"


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or ImportError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"The ray engine needs Ray Data: pip install 'aiclassify[{EXTRA}]' "
            f"(or pip install 'ray[data]'). Received: {error}"
        ) from error
    return ray


class BatchScorer:
    """The actor of the engine: one predictor for the run, rows for each batch of paths, as JSON
    strings (nested rows do not fit one Arrow schema)."""

    def __init__(self, provenance: Provenance, target_fpr: float | None, operating_point: str | None):
        from aiclassify.predict import Predictor

        self.predictor = Predictor.load(provenance.run)
        threshold, point = self.predictor.threshold_for(target_fpr, operating_point)
        if (threshold, point) != (provenance.threshold, provenance.operating_point):
            raise ValueError(
                f"The run at {provenance.run} gives this worker threshold {threshold} (operating point "
                f"{point}), not the driver's: is it the same run at the same path on every node? "
                f"Received: provenance={provenance}"
            )
        self.provenance = provenance

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        """The rows of one batch of paths (column ``path``), as JSON (column ``row``)."""
        paths = [str(path) for path in batch["path"]]
        rows = scored_rows(self.predictor, load_images(self.predictor, paths), self.provenance)
        return {ROW_COLUMN: [json.dumps(row) for row in rows]}


def ray_batches(
    provenance: Provenance,
    paths: Sequence[str],
    batch_size: int,
    workers: int,
    target_fpr: float | None = None,
    operating_point: str | None = None,
) -> Iterator[list[dict]]:
    """The rows of ``paths``, in order, one list per batch, scored by ``workers`` Ray actors."""
    if not paths:
        return
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        local = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": max(workers, os.cpu_count() or 1)}
        ray.init(include_dashboard=False, log_to_driver=False, **local)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # the command shows its own
        dataset = ray.data.from_items([{"path": path} for path in paths])
        scored = dataset.map_batches(
            BatchScorer,
            fn_constructor_args=(provenance, target_fpr, operating_point),
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,  # for Ray's placement; TensorFlow in the actor uses the node's cores
            batch_format="numpy",
        )
        for batch in scored.iter_batches(batch_size=batch_size, batch_format="numpy"):
            yield [json.loads(text) for text in batch[ROW_COLUMN]]
    finally:
        if started_here:
            ray.shutdown()
