"""Multi-worker runs: the chief writes the run directory, every other worker a private scratch copy.

Under ``MultiWorkerMirroredStrategy`` every worker runs the same program, callbacks and export
included (prediction gathers across workers, so all of them must take part). The chief (the
``chief`` task of ``TF_CONFIG``, else worker 0: ``strategy.extended.should_checkpoint``) writes
into the run directory. Each other worker writes into a temporary directory of its own, deleted
when it finishes, as TensorFlow's multi-worker Keras tutorial prescribes; a resumed run first copies
the chief's backup and checkpoints there, so every worker restores the same weights and epoch.
The run directory must therefore be readable by every worker at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from aiclassify import runs

logger = logging.getLogger("aiclassify.train")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, outside multi-worker training)."""
    return strategy.extended.should_checkpoint


@contextlib.contextmanager
def worker_workdir(strategy: tf.distribute.Strategy, workdir: Path, overwrite: bool) -> Iterator[Path]:
    """The directory this worker writes its run into: ``workdir`` on the chief, else a scratch copy.

    A non-chief worker gets a temporary directory holding the chief's resume state (when the chief
    will resume or refuse to start, so that this worker decides the same), removed on exit.
    """
    workdir = Path(workdir)
    if is_chief(strategy):
        yield workdir
        return
    resolver = strategy.cluster_resolver
    with tempfile.TemporaryDirectory(prefix=f"aiclassify-{resolver.task_type}{resolver.task_id}-") as scratch:
        copy = Path(scratch) / workdir.name
        if not overwrite and (runs.is_resumable(workdir) or (workdir / runs.METADATA_FILE).is_file()):
            runs.copy_resume_state(workdir, copy)
        logger.info(
            "Worker %s:%d is not the chief: its copy of the run goes to %s (deleted at the end); "
            "the chief writes %s.",
            resolver.task_type,
            resolver.task_id,
            copy,
            workdir,
        )
        yield copy


def check_same_start(strategy: tf.distribute.Strategy, initial_epoch: int) -> None:
    """Fail on every worker unless all of them start at ``initial_epoch`` (a collective: all must call).

    A worker that cannot see the chief's backup would start over while the others resume, and the
    workers' collectives would stop matching: a hang instead of an error.
    """
    if strategy.num_replicas_in_sync == 1:
        return
    epochs = strategy.gather(strategy.run(lambda: tf.constant([initial_epoch])), axis=0).numpy()
    if len(set(epochs.tolist())) > 1:
        raise runs.RunDirectoryError(
            "The workers disagree on the epoch to start from: every worker must see the chief's run "
            f"directory (a filesystem shared at the same path). Received: epochs={epochs.tolist()}"
        )


def fit_across_workers(model: keras.Model, dataset: tf.data.Dataset) -> None:
    """Let ``model.fit`` and ``evaluate`` run under ``MultiWorkerMirroredStrategy`` (else: no-op).

    Keras 3 (3.15, and its main branch as read) fails there in two places, both on this instance
    only: (1) it builds the compiled metrics, loss and optimizer from a first batch averaged across
    the workers with ``strategy.reduce``, which cannot take an ``(x, y)`` batch ("Attempt to convert
    a value (PerReplica...) to a Tensor"), so the model is built from ``dataset``'s element spec
    instead (only shapes and dtypes are read); (2) it averages each step's logs across workers with
    ``strategy.reduce(..., axis=0)``, which a scalar has no axis for, so the steps return each log
    as a length-1 vector. The values are unchanged: every replica already holds the global metric,
    since metric variables are summed across replicas on each update.
    """
    if not isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    build, train_step, test_step = model._maybe_symbolic_build, model.train_step, model.test_step
    spec = dataset.element_spec
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(data_batch=spec)
    model.train_step = lambda data: _as_vectors(train_step(data))
    model.test_step = lambda data: _as_vectors(test_step(data))


def _as_vectors(logs: dict) -> dict:
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
