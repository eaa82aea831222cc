"""Streamed model calls that share settings run as one backend call (one forward pass).

A diffusion step costs nearly the same for one image as for several on a GPU, and on a
CPU the per-call overheads (text encoding, scheduler set-up, Python between steps) are
paid once. The host's single worker thread does the work: while one group runs, new calls
wait; the next group takes every waiting call whose settings match the oldest one's.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

# The backend's method: (list of per-call kwargs, emit) -> one result per call.
# ``emit(index, item)`` streams an item to call ``index``, or to every call when None, and
# answers whether that call (with None: any call of the run) still wants its result: a
# backend may stop early (raise) when none does, e.g. when every caller's run was cancelled.
Emit = Callable[[int | None, Any], bool]
GroupFunction = Callable[[list[dict[str, Any]], Emit], list[Any]]

END = object()


class Failed:
    """Carries a backend error to the consumer of a stream."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


@dataclass(eq=False)  # calls are told apart by identity: their kwargs may hold images
class _Call:
    kwargs: dict[str, Any]
    key: Hashable
    size: int
    items: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    abandoned: threading.Event = field(default_factory=threading.Event)


class StreamGroups:
    """Groups waiting calls by ``key(kwargs)`` up to ``max_items`` items (a call counts as
    its ``batch_size``). ``submit_work`` hands a function to the host's worker thread.

    ``gather`` seconds: how long a call that finds the worker idle waits for company; it
    is small next to a diffusion run and lets requests that arrive together share one.
    """

    def __init__(self, function: GroupFunction, key: Callable[[dict[str, Any]], Hashable],
                 submit_work: Callable[[Callable[[], None]], Any], max_items: int,
                 gather: float = 0.02,
                 limit: Callable[[dict[str, Any]], int] | None = None) -> None:
        self.function = function
        self.key = key
        self.submit_work = submit_work
        self.max_items = max_items
        # Items a group led by these kwargs may hold (big pictures: fewer), at most max_items.
        self.limit = limit
        self.gather = gather
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self.batches = 0
        self.items = 0

    def submit(self, kwargs: dict[str, Any]) -> _Call:
        """Queue a call; its items, then its result, then ``END`` arrive on ``.items``.
        Setting ``.abandoned`` says its consumer has gone."""
        size = max(int(kwargs.get("batch_size", 1) or 1), 1)
        call = _Call(kwargs, self.key(kwargs), size)
        with self._lock:
            self._waiting.append(call)
        try:
            self.submit_work(self._run_next)
        except BaseException:  # the host is closing: the call must not wait for ever
            with self._lock:
                self._waiting = [c for c in self._waiting if c is not call]
            raise
        return call

    def _take(self) -> list[_Call]:
        with self._lock:
            if not self._waiting:
                return []
            first = self._waiting[0]
            most = self._most(first)
            taken, total = [], 0
            for call in self._waiting:
                if call.key == first.key and (not taken or total + call.size <= most):
                    taken.append(call)
                    total += call.size
            chosen = {id(c) for c in taken}
            self._waiting = [c for c in self._waiting if id(c) not in chosen]
            return taken

    def _most(self, first: _Call) -> int:
        """Items a run led by ``first`` may hold."""
        return self.max_items if self.limit is None else \
            max(1, min(self.max_items, self.limit(first.kwargs)))

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _run_next(self) -> None:
        # One submission per call, so there is always a turn for every waiting call; a
        # turn that finds nothing (an earlier turn took its call along) just returns.
        with self._lock:
            self._waiting = [c for c in self._waiting if not c.abandoned.is_set()]
            waiting = sum(c.size for c in self._waiting)
            most = self._most(self._waiting[0]) if self._waiting else 0
        if not waiting:
            return
        if self.gather and waiting < most:  # room for company: wait a moment for it
            time.sleep(self.gather)
        taken = self._take()
        if not taken:
            return

        def emit(index: int | None, item: Any) -> bool:
            addressed = taken if index is None else [taken[index]]
            for call in addressed:
                call.items.put(item)
            return not all(c.abandoned.is_set() for c in addressed)

        try:
            results = self.function([c.kwargs for c in taken], emit)
            if len(results) != len(taken):
                raise RuntimeError(f"grouped call returned {len(results)} results for "
                                   f"{len(taken)} calls")
            self.batches += 1
            self.items += sum(c.size for c in taken)
        except BaseException as exc:  # every caller gets the failure, nobody hangs
            for call in taken:
                call.items.put(Failed(exc))
                call.items.put(END)
            return
        for call, result in zip(taken, results, strict=True):
            call.items.put(result)
            call.items.put(END)
