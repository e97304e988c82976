"""The batching queue's dispatch: a lone request goes at once, concurrent requests still batch."""

from __future__ import annotations

import threading
import time

import pytest

from aiclassify.serving.batching import BatchQueue

WAIT_S = 0.4  # the batching wait: far longer than an immediate dispatch takes


def lengths(items):
    return [len(item) for item in items]


def test_a_lone_request_on_an_idle_queue_is_not_held_for_the_wait():
    queue = BatchQueue(lengths, max_batch_size=8, max_wait_s=WAIT_S)
    try:
        queue.submit("warm").result(10)  # the very first item may wait: there is no history yet
        for item in ["a", "bb", "ccc"]:
            time.sleep(WAIT_S * 1.25)  # requests further apart than the wait: sparse traffic
            started = time.monotonic()
            assert queue.submit(item).result(10) == len(item)
            assert time.monotonic() - started < WAIT_S / 2
        assert queue.batch_sizes[-3:] == [1, 1, 1]
    finally:
        queue.close()


def test_items_queued_during_a_running_batch_form_the_next_batch():
    running, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def score(items):
        seen.append(len(items))
        running.set()
        release.wait(10)
        return lengths(items)

    queue = BatchQueue(score, max_batch_size=8, max_wait_s=0.0)  # no waiting at all
    try:
        first = queue.submit("x")
        assert running.wait(10)
        rest = [queue.submit("y" * n) for n in range(1, 6)]
        release.set()
        assert first.result(10) == 1 and [f.result(10) for f in rest] == [1, 2, 3, 4, 5]
        assert seen == [1, 5]
    finally:
        release.set()
        queue.close()


def test_requests_arriving_together_are_batched_up_to_the_limit():
    queue = BatchQueue(lengths, max_batch_size=4, max_wait_s=0.3)
    try:
        queue.submit("warm").result(10)
        time.sleep(0.5)  # sparse: the next first item is dispatched at once...
        barrier = threading.Barrier(10)
        futures = {}

        def send(index: int) -> None:
            barrier.wait(10)
            futures[index] = queue.submit("z" * (index + 1))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert {i: f.result(10) for i, f in futures.items()} == {i: i + 1 for i in range(10)}
        batches = queue.batch_sizes[1:]
        assert sum(batches) == 10 and max(batches) <= 4
        assert max(batches) > 1  # ...but the ones arriving together with it wait and share passes
    finally:
        queue.close()


def test_a_closed_queue_rejects_new_items():
    queue = BatchQueue(lengths)
    queue.close()
    with pytest.raises(RuntimeError, match="closed"):
        queue.submit("a").result(1)


def test_under_steady_load_the_wait_ends_once_the_batch_is_as_large_as_the_last():
    queue = BatchQueue(lengths, max_batch_size=8, max_wait_s=1.0)
    try:
        first = [queue.submit("a" * n) for n in (1, 2, 3)]  # no history: waits the whole second
        assert [f.result(10) for f in first] == [1, 2, 3]
        started = time.monotonic()
        second = [queue.submit("b" * n) for n in (1, 2, 3)]  # last batch was 3: go once 3 are in
        assert [f.result(10) for f in second] == [1, 2, 3]
        assert time.monotonic() - started < 0.5
        assert queue.batch_sizes == [3, 3]
    finally:
        queue.close()
