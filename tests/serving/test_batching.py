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
        for item in ["warm", "a", "bb", "ccc"]:
            time.sleep(WAIT_S * 1.25)  # requests further apart than the wait: sparse traffic
            started = time.monotonic()
            assert queue.submit(item).result(10) == len(item)
            assert time.monotonic() - started < WAIT_S / 2
        assert queue.batch_sizes == [1, 1, 1, 1]
    finally:
        queue.close()


def test_back_to_back_requests_from_one_client_are_not_held_for_the_wait():
    """Concurrency 1 with a fast model: each request follows the previous answer within far less
    than the wait, but none was in flight when it arrived, so none waits."""
    queue = BatchQueue(lengths, max_batch_size=8, max_wait_s=WAIT_S)
    try:
        started = time.monotonic()
        for n in range(1, 11):
            assert queue.submit("x" * n).result(10) == n
        assert time.monotonic() - started < WAIT_S  # ten requests in less than one wait
        assert queue.batch_sizes == [1] * 10
    finally:
        queue.close()


def test_items_in_flight_are_counted_out_on_results_errors_and_cancellation():
    running, release = threading.Event(), threading.Event()

    def score(items):
        running.set()
        release.wait(10)
        if "bad" in items:
            raise ValueError("bad input")
        return lengths(items)

    queue = BatchQueue(score, max_batch_size=8, max_wait_s=0.0)
    try:
        blocker = queue.submit("x")
        assert running.wait(10)  # the worker is scoring "x"
        cancelled, bad, good = queue.submit("cancel-me"), queue.submit("bad"), queue.submit("ok")
        assert cancelled.cancel()
        release.set()
        assert blocker.result(10) == 1 and good.result(10) == 2
        with pytest.raises(ValueError, match="bad input"):
            bad.result(10)
        assert queue._in_flight == 0
        started = time.monotonic()
        assert queue.submit("abc").result(10) == 3  # idle again: no wait, no stale count
        assert time.monotonic() - started < 1
    finally:
        release.set()
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
    running, release = threading.Event(), threading.Event()

    def score(items):
        running.set()
        release.wait(10)
        return lengths(items)

    queue = BatchQueue(score, max_batch_size=8, max_wait_s=1.0)
    try:
        blocker = queue.submit("w")  # scored at once; the next three queue behind it
        assert running.wait(10)
        first = [queue.submit("a" * n) for n in (1, 2, 3)]
        release.set()
        assert blocker.result(10) == 1 and [f.result(10) for f in first] == [1, 2, 3]
        started = time.monotonic()
        second = [queue.submit("b" * n) for n in (1, 2, 3)]  # last batch was 3: go once 3 are in
        assert [f.result(10) for f in second] == [1, 2, 3]
        assert time.monotonic() - started < 0.5
        assert queue.batch_sizes == [1, 3, 3]
    finally:
        release.set()
        queue.close()


def test_the_batch_callback_sees_every_batch_and_cannot_fail_one():
    reported = []
    queue = BatchQueue(lengths, max_batch_size=4, max_wait_s=0.0, on_batch=reported.append)
    try:
        assert [queue.submit("x" * n).result(10) for n in (1, 2, 3)] == [1, 2, 3]
        assert reported == queue.batch_sizes and sum(reported) == 3
    finally:
        queue.close()

    def broken(size):
        raise RuntimeError("monitoring is down")

    queue = BatchQueue(lengths, max_batch_size=4, max_wait_s=0.0, on_batch=broken)
    try:
        assert queue.submit("abc").result(10) == 3
    finally:
        queue.close()
