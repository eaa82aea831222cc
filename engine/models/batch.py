"""Batching concurrent requests to one model into one forward pass."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Request:
    items: Sequence[Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Any] | None = None
    error: BaseException | None = None


class Batcher:
    """Collects requests for up to ``max_wait`` seconds or ``max_items`` items, then runs
    ``function`` once over all their items and hands each caller its slice.

    The first caller of a batch does the work on its own thread; the others wait.
    """

    def __init__(self, function: Callable[[list[Any]], list[Any]], max_items: int = 64,
                 max_wait: float = 0.005) -> None:
        self.function = function
        self.max_items = max_items
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._full = threading.Event()
        self.batches = 0
        self.items = 0

    def submit(self, items: Sequence[Any]) -> list[Any]:
        request = _Request(items)
        with self._lock:
            self._pending.append(request)
            leader = len(self._pending) == 1
            if sum(len(r.items) for r in self._pending) >= self.max_items:
                self._full.set()
        if leader:
            self._full.wait(self.max_wait)
            with self._lock:
                batch, self._pending = self._pending, []
                self._full.clear()
            self._run(batch)
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _run(self, batch: list[_Request]) -> None:
        flat = [item for request in batch for item in request.items]
        try:
            results = list(self.function(flat))
            if len(results) != len(flat):
                raise RuntimeError(f"batched call returned {len(results)} results for "
                                   f"{len(flat)} items")
        except BaseException as exc:  # every waiter gets the failure, nobody hangs
            for request in batch:
                request.error = exc
                request.done.set()
            return
        self.batches += 1
        self.items += len(flat)
        start = 0
        for request in batch:
            request.result = results[start:start + len(request.items)]
            start += len(request.items)
            request.done.set()


