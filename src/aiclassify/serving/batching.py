"""Server-side batching: requests that arrive together share one forward pass.

Each model has one :class:`BatchQueue` with one worker thread. ``submit`` returns a future; the
worker takes the first waiting item and everything already queued behind it, calls the scoring
function once on the whole list and resolves every future. Items that arrive while a batch is
being scored wait in the queue and form the next batch, so under load batches grow by themselves.

The worker waits up to ``max_wait_s`` for more items only when requests are arriving together:
when it found more than one item waiting, when the previous batch had more than one item, or when
another request was in flight (queued or being scored) as the first item arrived. A lone request
on an idle queue is scored at once, without the wait, however soon it follows the previous one:
a client sending one request after another (concurrency 1) never waits, even for a fast model.
While waiting, it stops as soon as the batch is as large as the previous one (then takes whatever
else is already queued): under steady load that is how many requests are in flight, and waiting
longer would only idle the model. Batches still grow when more requests queue up.

When a batch fails, its items are scored one by one so that a single bad input fails only its own
request.
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
        on_batch: Callable[[int], None] | None = None,
    ):
        """``on_batch(size)``, when given, is called with the size of every batch about to be scored."""
        self._score = score
        self._on_batch = on_batch
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._in_flight = 0  # submitted items whose futures are not resolved yet
        self._in_flight_lock = threading.Lock()
        self._last_batch_size = 0
        self.batch_sizes: list[int] = []  # recent batch sizes, for tests and monitoring
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> Future:
        """Queue one input; the future resolves to its score or the exception scoring raised."""
        future: Future = Future()
        if self._closed:
            future.set_exception(RuntimeError("the batching queue is closed"))
            return future
        with self._in_flight_lock:
            busy = self._in_flight > 0
            self._in_flight += 1
        self._queue.put((item, future, busy))
        return future

    def _settle(self, future: Future, result: Any = None, error: BaseException | None = None) -> None:
        """Count the item out of flight, then resolve its (running) future: in that order, so that a
        client answered at once and sending its next request does not find this one in flight."""
        with self._in_flight_lock:
            self._in_flight -= 1
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

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
        """Block for one item, take what is queued behind it, and wait for more only under load."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        entries = [first]
        stop = self._drain(entries, deadline=None)
        if not stop and len(entries) < self.max_batch_size and self._expect_more(entries):
            # Under steady load the previous batch size is what will come: stop waiting once it has.
            target = self._last_batch_size if self._last_batch_size > 1 else self.max_batch_size
            stop = self._drain(entries, deadline=time.monotonic() + self.max_wait_s, limit=target)
            stop = stop or self._drain(entries, deadline=None)
        self._last_batch_size = len(entries)
        return [(item, future) for item, future, _ in entries], stop

    def _drain(self, entries: list, deadline: float | None, limit: int | None = None) -> bool:
        """Append queued entries until there are ``limit`` (default: a full batch), the queue is
        empty (``deadline`` None) or ``deadline`` has passed; True when the stop marker was met."""
        while len(entries) < min(limit or self.max_batch_size, self.max_batch_size):
            remaining = 0.0 if deadline is None else deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if entry is _STOP:
                return True
            entries.append(entry)
        return False

    def _expect_more(self, entries: list) -> bool:
        """Whether requests are arriving together, so waiting ``max_wait_s`` should fill the batch."""
        if self.max_wait_s <= 0:
            return False
        if len(entries) > 1 or self._last_batch_size > 1:
            return True
        _, _, busy = entries[0]
        return busy  # another request was queued or being scored when this one arrived

    def _score_batch(self, batch: list[tuple[Any, Future]]) -> None:
        """Score ``batch`` at once; on failure, one by one."""
        live = []
        for item, future in batch:
            if future.set_running_or_notify_cancel():
                live.append((item, future))
            else:  # cancelled while queued
                with self._in_flight_lock:
                    self._in_flight -= 1
        if not live:
            return
        self.batch_sizes = (self.batch_sizes + [len(live)])[-1000:]
        if self._on_batch is not None:
            try:
                self._on_batch(len(live))
            except Exception:  # monitoring must never fail a batch
                logger.exception("The batch-size callback failed")
        try:
            scores = list(self._score([item for item, _ in live]))
            if len(scores) != len(live):
                raise RuntimeError(f"scoring returned {len(scores)} results for {len(live)} inputs")
        except Exception as error:
            if len(live) == 1:
                self._settle(live[0][1], error=error)
                return
            logger.info("A batch of %d failed (%s); scoring its items one by one", len(live), error)
            for item, future in live:
                self._score_single(item, future)
            return
        for (_, future), score in zip(live, scores, strict=True):
            self._settle(future, score)

    def _score_single(self, item: Any, future: Future) -> None:
        """Score one item and resolve its future."""
        try:
            score = list(self._score([item]))[0]
        except Exception as error:
            self._settle(future, error=error)
            return
        self._settle(future, score)
