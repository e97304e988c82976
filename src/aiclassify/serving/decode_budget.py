"""The decode budget of a request: CPU time for preparing its images, checked while they are decoded.

One small upload can cost tens of seconds of decoding (a progressive JPEG with thousands of scans,
a huge but legal image). Limits read from the bytes stop most of them before any pixel is decoded
(:mod:`aiclassify.serving.images`); the :class:`DecodeClock` bounds the rest. It counts the CPU
time of the request's thread from the start of preparation (Pillow's check and normalisation, then
TensorFlow's decode into model input, and any later decode of the same bytes: an explanation's),
and the server checks it between images, before each TensorFlow decode, before each WebP decode
(libwebp's one call, estimated from above: :mod:`aiclassify.serving.webp_cost`) and, through
:class:`BudgetedReader`, at every read Pillow's decoder makes. Work on pixels already decoded is
left out (:meth:`DecodeClock.paused`).

When the budget runs out the request gets an :class:`~aiclassify.serving.errors.ApiError`: 422 when
the image being prepared alone costs more than the whole budget, 413 when the request's images
together do. CPU time rather than wall time: an image is charged for its own decoding, not for the
other requests sharing the machine.
"""

from __future__ import annotations

import io
import time
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from aiclassify.serving.errors import ApiError


class DecodeClock:
    """The CPU time one request's image preparation has used, against ``budget_s``.

    Used from the request's own thread only: it reads that thread's CPU clock.
    """

    def __init__(self, budget_s: float):
        if budget_s <= 0:
            raise ValueError(f"the decode budget must be positive. Received: budget_s={budget_s}")
        self.budget_s = float(budget_s)
        self._started = time.thread_time()
        self._spent: dict[int, float] = {}
        self._current: int | None = None
        self._current_since = 0.0

    def used_s(self) -> float:
        """CPU seconds used since the clock started."""
        return time.thread_time() - self._started

    def spent_on(self, index: int) -> float:
        """CPU seconds spent preparing image ``index`` so far."""
        spent = self._spent.get(index, 0.0)
        if index == self._current:
            spent += time.thread_time() - self._current_since
        return spent

    def spent_on_current(self) -> float:
        """CPU seconds spent so far on the image being prepared (0 outside :meth:`image`)."""
        return 0.0 if self._current is None else self.spent_on(self._current)

    @contextmanager
    def image(self, index: int) -> Iterator[None]:
        """Charge the time spent inside the block to image ``index``."""
        previous = self._current
        if previous is not None:
            self._spent[previous] = self.spent_on(previous)
        self._current, self._current_since = index, time.thread_time()
        try:
            yield
        finally:
            self._spent[index] = self.spent_on(index)
            self._current, self._current_since = previous, time.thread_time()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Charge nothing for the block: work in the request's thread that decodes nothing (a model's
        gradients on pixels already decoded, an overlay's encoding). The block must open no
        :meth:`image` block."""
        since = time.thread_time()
        try:
            yield
        finally:
            elapsed = time.thread_time() - since
            self._started += elapsed
            self._current_since += elapsed

    def check(self, upcoming_s: float = 0.0) -> None:
        """Raise when the budget is spent, or would be by ``upcoming_s`` more seconds of work: 422 when
        it would be even without the time spent on the request's other images, else 413."""
        used = self.used_s() + upcoming_s
        if used <= self.budget_s:
            return
        others = sum(spent for index, spent in self._spent.items() if index != self._current)
        if self._current is not None and used - others > self.budget_s:
            raise ApiError(
                422,
                f"decode budget exceeded: this image alone takes more than the {self.budget_s:g} s of CPU "
                "time a request may spend decoding its images",
                reason="decode_budget",
            )
        raise ApiError(
            413,
            f"decode budget exceeded: the request's images take more than {self.budget_s:g} s of CPU "
            "time to decode; send fewer or smaller images",
            reason="decode_budget",
        )


class BudgetedReader(io.BytesIO):
    """An upload's bytes for Pillow that checks ``clock`` at every read.

    After :meth:`pace`, a read stops at the next of the given offsets (a JPEG's scan starts), so
    that Pillow's decoder, which resumes on short reads while it loads pixel data, gets one scan at
    a time and the clock is checked between scans. Pace only around ``load()``: Pillow reads
    headers expecting full reads.
    """

    def __init__(self, data: bytes, clock: DecodeClock):
        super().__init__(data)
        self.clock = clock
        self._stops: Sequence[int] = ()

    def pace(self, stops: Sequence[int]) -> None:
        """From now on, end each read at the next of ``stops`` (sorted offsets)."""
        self._stops = stops

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all when negative), after checking the clock."""
        self.clock.check()
        if self._stops:
            position = self.tell()
            following = bisect_right(self._stops, position)
            if following < len(self._stops):
                limit = self._stops[following] - position
                size = limit if size is None or size < 0 else min(size, limit)
        return super().read(size)
