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

    # A batch closes when it holds 14 items (or after 10 s): no timing luck involved.
    batcher = Batcher(upper, max_items=14, max_wait=10)
    results: dict[int, list[str]] = {}

    def ask(index: int, count: int) -> None:
        results[index] = batcher.submit([f"w{index}.{k}" for k in range(count)])

    leader = threading.Thread(target=ask, args=(0, 14))
    leader.start()
    assert first_running.wait(10)
    others = [threading.Thread(target=ask, args=(i, 2)) for i in range(1, 8)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)  # the seven requests fill the second batch, which then runs
    release.set()
    for thread in [leader, *others]:
        thread.join(10)
    assert results[0] == [f"W0.{k}" for k in range(14)]
    assert all(results[i] == [f"W{i}.0", f"W{i}.1"] for i in range(1, 8))
    assert [len(c) for c in calls] == [14, 14]
    assert (batcher.batches, batcher.items) == (2, 28)


def test_a_failing_batch_fails_every_caller():
    def broken(items: list[str]) -> list[str]:
        raise ValueError("model exploded")

    batcher = Batcher(broken, max_wait=0.001)
    with pytest.raises(ValueError, match="model exploded"):
        batcher.submit(["a"])
    assert batcher.batches == 0
