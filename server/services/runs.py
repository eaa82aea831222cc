"""Runs started over HTTP: their records, their events as asyncio streams, their queue."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from engine.errors import NodeError
from engine.events import Event
from engine.executors.base import Executor
from engine.files import FileStore
from engine.graph import Graph
from engine.run import RunHandle
from server.serialize import jsonable
from server.storage.journal import RunJournal

TERMINAL = {"run_finished", "run_failed", "run_cancelled"}


@dataclass
class RunRecord:
    handle: RunHandle
    number: int
    graph: Graph
    submitted: float = field(default_factory=time.time)
    client_id: str | None = None
    # The ComfyUI prompt as posted, when the run came through /prompt.
    prompt: dict[str, Any] | None = None
    extra_data: dict[str, Any] = field(default_factory=dict)
    output_nodes: list[str] = field(default_factory=list)
    # The finished run's outputs and ui as JSON: made once, since making them stores its
    # pictures as files (reading a run must not write a new file each time).
    _json: tuple[dict[str, Any], dict[str, Any]] | None = None
    _json_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def run_id(self) -> str:
        return self.handle.run_id

    def settled(self) -> bool:
        """Finished, result included. The terminal event goes out an instant before the
        result is set: a client that reacts to it at once (ComfyUI's scripts ask for the
        history on 'executing: None') must still find the run done."""
        handle = self.handle
        if handle.done():
            return True
        events = handle.events
        return bool(events) and events[-1].type in TERMINAL and handle.wait(5)

    def outputs_json(self, files: FileStore) -> tuple[dict[str, Any], dict[str, Any]]:
        """(outputs, ui) of the finished run as JSON, pictures stored once."""
        with self._json_lock:
            if self._json is None:
                result = self.handle.result(0)
                self._json = (jsonable(result.outputs, files), jsonable(result.ui, files))
            return self._json


class RunService:
    """Starts runs on the executor and remembers the last ``keep`` of them."""

    def __init__(self, executor: Executor, keep: int = 1000,
                 journal: RunJournal | None = None) -> None:
        self.executor = executor
        self.keep = keep
        self.journal = journal
        self._records: OrderedDict[str, RunRecord] = OrderedDict()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, graph: Graph, inputs: dict[str, Any] | None = None, *,
              outputs: list[str] | None = None, run_id: str | None = None,
              client_id: str | None = None, prompt: dict[str, Any] | None = None,
              extra_data: dict[str, Any] | None = None,
              listener: Any = None) -> RunRecord:
        """Validate and start; ``GraphValidationError`` propagates before anything runs."""
        # ComfyUI's hidden PROMPT and EXTRA_PNGINFO: SaveImage writes them into its PNGs.
        info = {"prompt": prompt, "extra_pnginfo": (extra_data or {}).get("extra_pnginfo")} \
            if prompt is not None else None
        plan_handle = self.executor.submit(graph, inputs, outputs=outputs, run_id=run_id,
                                           listener=listener, info=info)
        registry = self.executor.registry
        output_nodes = [n for n, node in graph.nodes.items()
                        if (d := registry.get(node.type)) is not None and d.spec.output_node]
        record = RunRecord(plan_handle, next(self._numbers), graph, client_id=client_id,
                           prompt=prompt, extra_data=extra_data or {}, output_nodes=output_nodes)
        if self.journal is not None:
            self._journal(plan_handle, self.journal)
        with self._lock:
            self._records[record.run_id] = record
            while len(self._records) > self.keep:
                self._records.popitem(last=False)
        return record

    @staticmethod
    def _journal(handle: RunHandle, journal: RunJournal) -> None:
        """Write the run's start now and its end when it comes (runs end on executor
        threads, where a database write is fine)."""
        journal.started(handle.run_id, handle.graph)

        def on_end(event: Event) -> None:
            if event.type in TERMINAL:
                error = event.data.get("error")
                journal.ended(handle.run_id, str(event.data.get("status", "failed")),
                              NodeError.model_validate(error) if error else None)
        handle.subscribe(on_end, replay=True)

    def get(self, run_id: str) -> RunRecord | None:
        return self._records.get(run_id)

    def records(self) -> list[RunRecord]:
        with self._lock:
            return list(self._records.values())

    def running(self) -> list[RunRecord]:
        return [r for r in self.records() if not r.handle.done()]

    def delete(self, run_id: str) -> bool:
        with self._lock:
            return self._records.pop(run_id, None) is not None

    def clear_finished(self) -> None:
        with self._lock:
            for run_id in [k for k, r in self._records.items() if r.handle.done()]:
                del self._records[run_id]


async def stream(handle: RunHandle) -> AsyncIterator[Event]:
    """A run's events, past ones first, ending after the terminal event."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    def deliver(event: Event) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    unsubscribe = handle.subscribe(deliver, replay=True)
    try:
        while True:
            event = await queue.get()
            yield event
            if event.type in TERMINAL:
                return
    finally:
        unsubscribe()


async def until_done(handle: RunHandle, timeout: float) -> bool:
    """Wait for the run to end (True) or ``timeout`` to pass (False) without holding a
    thread: a thread per waiting request would soon exhaust asyncio's small pool."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def on_event(event: Event) -> None:
        if event.type in TERMINAL:
            loop.call_soon_threadsafe(lambda: ended.done() or ended.set_result(None))

    unsubscribe = handle.subscribe(on_event, replay=False)
    try:
        if not handle.done():
            try:
                await asyncio.wait_for(ended, timeout)
            except TimeoutError:
                return handle.done()
        # The terminal event may go out just before the result is set.
        return handle.done() or await asyncio.to_thread(handle.wait, 5)
    finally:
        unsubscribe()


async def finish(service: RunService, graph: Graph, inputs: dict[str, Any],
                 what: str, timeout: float = 3600) -> dict[str, Any]:
    """Run a feature graph to the end; its outputs, or its failure as an API error."""
    from server.errors import ApiError

    record = await asyncio.to_thread(service.start, graph, inputs)
    if not await until_done(record.handle, timeout):
        record.handle.cancel()
        raise ApiError(504, "timeout", f"{what} took longer than {timeout:g} s and was "
                       "cancelled")
    result = record.handle.result(0)
    if result.status == "success":
        return result.outputs
    error = result.error
    if error is None:
        raise ApiError(503, "cancelled", f"{what} was cancelled (is the server stopping?)")
    # Raised inside a model host under Ray, an error arrives as "RayTaskError(ValueError)".
    kind = error.error_type.removeprefix("RayTaskError(").removesuffix(")")
    if kind == "ModelNotFoundError":
        raise ApiError(404, "model_not_found", error.message)
    if kind == "ValueError":
        raise ApiError(400, "invalid_input", f"{what}: {error.message}")
    raise ApiError(500, "generation_failed", f"{what} failed in node '{error.node_id}' "
                   f"({error.error_type}): {error.message}")
