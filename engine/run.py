"""A run in progress (``RunHandle``) and its outcome (``RunResult``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import NodeError
from engine.events import Event

log = logging.getLogger("homepilot.engine")

RunStatus = Literal["queued", "running", "success", "failed", "cancelled"]
Listener = Callable[[Event], None]


class NodeTiming(BaseModel):
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


class RunResult(BaseModel):
    """What a finished run produced. ``outputs`` holds live values (images stay images)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    run_id: str
    graph: str
    executor: str
    status: RunStatus
    outputs: dict[str, Any] = Field(default_factory=dict)
    ui: dict[str, dict[str, Any]] = Field(default_factory=dict)
    executed: list[str] = Field(default_factory=list)
    cached: list[str] = Field(default_factory=list)
    timings: dict[str, NodeTiming] = Field(default_factory=dict)
    error: NodeError | None = None
    started: float = 0.0
    finished: float = 0.0


class RunHandle:
    """Follow a run: its events (replayed to late subscribers), cancel it, await its result."""

    def __init__(self, run_id: str, graph: str, executor: str,
                 info: dict[str, Any] | None = None) -> None:
        self.run_id = run_id
        self.graph = graph
        self.executor = executor
        # What the run's nodes may read about it (ComfyUI's hidden PROMPT/EXTRA_PNGINFO).
        self.info: dict[str, Any] = info or {}
        self.status: RunStatus = "queued"
        self.events: list[Event] = []
        self.cancel_event = threading.Event()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: RunResult | None = None

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
            listeners = self._listeners[:] if self._listeners else ()
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken subscriber must not break the run
                log.exception("event listener failed on %s", event.type)

    def subscribe(self, listener: Listener, replay: bool = True) -> Callable[[], None]:
        """Receive every event from now on (and those so far when ``replay``)."""
        with self._lock:
            past = self.events[:] if replay else []
            self._listeners.append(listener)
        for event in past:
            listener(event)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def finish(self, result: RunResult) -> None:
        self._result = result
        self.status = result.status
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (True) or ``timeout`` passes (False)."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> RunResult:
        if not self._done.wait(timeout):
            raise TimeoutError(f"run {self.run_id} did not finish within {timeout} s")
        assert self._result is not None
        return self._result

    def make(self, status: RunStatus, started: float, **fields: Any) -> RunResult:
        return RunResult(run_id=self.run_id, graph=self.graph, executor=self.executor,
                         status=status, started=started, finished=time.time(), **fields)
