"""Server-side batching: requests that arrive together share one forward pass.

Each model has one :class:`BatchQueue` with one worker thread. ``submit`` returns a future; the
worker takes the first waiting item, gathers more until ``max_batch_size`` items or
``max_wait_s`` have passed, calls the scoring function once on the whole list and resolves every
future. When a batch fails, its items are scored one by one so that a single bad input fails only
its own request.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger("aiclassify.serving.batching")

_STOP = object()


class BatchQueue:
    """A queue of single inputs scored in batches by one worker thread."""

    def __init__(
        self,
        score: Callable[[list[Any]], Sequence[Any]],
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        name: str = "model",
    ):
        self._score = score
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self.batch_sizes: list[int] = []  # recent batch sizes, for tests and monitoring
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> Future:
        """Queue one input; the future resolves to its score or the exception scoring raised."""
        future: Future = Future()
        if self._closed:
            future.set_exception(RuntimeError("the batching queue is closed"))
            return future
        self._queue.put((item, future))
        return future

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the items already queued."""
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        """Worker loop: gather a batch, score it, repeat until closed."""
        while True:
            batch, stop = self._gather()
            if batch:
                self._score_batch(batch)
            if stop:
                return

    def _gather(self) -> tuple[list[tuple[Any, Future]], bool]:
        """Block for one item, then take more until the batch is full or the wait is over."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                return batch, True
            batch.append(entry)
        return batch, False

    def _score_batch(self, batch: list[tuple[Any, Future]]) -> None:
        """Score ``batch`` at once; on failure, one by one."""
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        self.batch_sizes = (self.batch_sizes + [len(live)])[-1000:]
        try:
            scores = list(self._score([item for item, _ in live]))
            if len(scores) != len(live):
                raise RuntimeError(f"scoring returned {len(scores)} results for {len(live)} inputs")
        except Exception as error:
            if len(live) == 1:
                live[0][1].set_exception(error)
                return
            logger.info("A batch of %d failed (%s); scoring its items one by one", len(live), error)
            for item, future in live:
                self._score_single(item, future)
            return
        for (_, future), score in zip(live, scores, strict=True):
            future.set_result(score)

    def _score_single(self, item: Any, future: Future) -> None:
        """Score one item and resolve its future."""
        try:
            future.set_result(list(self._score([item]))[0])
        except Exception as error:
            future.set_exception(error)
