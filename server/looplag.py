"""How late the event loop wakes up: the measure of whether anything blocks it.

Every request shares the one asyncio loop; a DuckDB query, a file write or a model
directory scan made on it stalls every other client for as long as it takes. A task
sleeps ``interval`` seconds over and over and records how much later than asked it woke.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from pydantic import BaseModel


class LagStats(BaseModel):
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class LoopLag:
    def __init__(self, interval: float = 0.01, keep: int = 30_000) -> None:
        self.interval = interval
        self._lags: deque[float] = deque(maxlen=keep)

    async def watch(self) -> None:
        """Sample until cancelled (started with the app)."""
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval)
            self._lags.append(max(0.0, time.perf_counter() - asked - self.interval))

    def reset(self) -> None:
        self._lags.clear()

    def stats(self) -> LagStats:
        lags = sorted(self._lags)
        if not lags:
            return LagStats(samples=0, p50_ms=0.0, p99_ms=0.0, max_ms=0.0)

        def at(share: float) -> float:
            return round(lags[min(len(lags) - 1, int(share * len(lags)))] * 1000, 2)
        return LagStats(samples=len(lags), p50_ms=at(0.5), p99_ms=at(0.99),
                        max_ms=round(lags[-1] * 1000, 2))
