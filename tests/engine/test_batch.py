"""Batching: concurrent requests share one call, each caller gets its own results."""

from __future__ import annotations

import threading
import time

import pytest

from engine.models.batch import Batcher


def test_requests_arriving_together_share_one_call():
    calls: list[list[str]] = []
    first_running = threading.Event()
    release = threading.Event()

    def upper(items: list[str]) -> list[str]:
        calls.append(list(items))
        if len(calls) == 1:  # hold the first batch until the rest have queued up
            first_running.set()
            release.wait(10)
        return [item.upper() for item in items]

    batcher = Batcher(upper, max_items=64, max_wait=0.001)
    results: dict[int, list[str]] = {}

    def ask(index: int) -> None:
        results[index] = batcher.submit([f"w{index}", f"x{index}"])

    leader = threading.Thread(target=ask, args=(0,))
    leader.start()
    assert first_running.wait(10)
    others = [threading.Thread(target=ask, args=(i,)) for i in range(1, 8)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while sum(len(r.items) for r in batcher._pending) < 14 and time.monotonic() < deadline:
        time.sleep(0.001)  # the seven requests are queueing behind the held batch
    release.set()
    for thread in [leader, *others]:
        thread.join(10)
    assert results == {i: [f"W{i}", f"X{i}"] for i in range(8)}
    assert [len(c) for c in calls] == [2, 14]
    assert (batcher.batches, batcher.items) == (2, 16)


def test_a_failing_batch_fails_every_caller():
    def broken(items: list[str]) -> list[str]:
        raise ValueError("model exploded")

    batcher = Batcher(broken, max_wait=0.001)
    with pytest.raises(ValueError, match="model exploded"):
        batcher.submit(["a"])
    assert batcher.batches == 0
