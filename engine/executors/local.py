"""In-process executor: a driver loop plus a thread pool for parallel branches."""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.cache import OutputCache, estimate_size
from engine.context import NodeContext
from engine.errors import NodeError
from engine.events import Event
from engine.executors.base import (
    Executor,
    finished_event,
    inherited,
    is_cancellation,
    node_error,
    started_event,
)
from engine.files import FileStore
from engine.invoke import execute, gather
from engine.models.local import LocalModels
from engine.models.store import ModelStore
from engine.plan import Plan, PlanNode
from engine.registry import Registry
from engine.run import NodeTiming, RunHandle
from engine.settings import get_settings
from engine.spec import NodeResult

# (node id, result, exception, start, end) of one node's execution.
Outcome = tuple[str, NodeResult | None, BaseException | None, float, float]


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, registry: Registry, cache: OutputCache | None = None, *,
                 max_workers: int | None = None, files: FileStore | None = None,
                 models: LocalModels | None = None) -> None:
        super().__init__(registry, cache)
        self.max_workers = max_workers or get_settings().local_workers
        self.files = files
        self._models = models
        self._models_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="homepilot-node")
        self._gpus: float | None = None

    def gpu_count(self) -> float:
        if self._gpus is None:
            self._gpus = float(_local_gpus())
        return self._gpus

    def models(self) -> LocalModels:
        """The in-process model hosts, created on first use."""
        if self._models is None:
            with self._models_lock:
                if self._models is None:
                    settings = get_settings()
                    self._models = LocalModels(ModelStore(settings.models_dir),
                                               settings.model_memory_budget, self.gpu_count())
        return self._models

    def model_status(self) -> list[dict[str, Any]]:
        return [info.model_dump() for info in self._models.status()] if self._models else []

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._models is not None:
            self._models.close()

    def _start(self, plan: Plan, handle: RunHandle) -> None:
        threading.Thread(target=self._drive, args=(plan, handle), daemon=True,
                         name=f"homepilot-run-{handle.run_id[:8]}").start()

    def _drive(self, plan: Plan, handle: RunHandle) -> None:
        Drive(self, plan, handle).loop()


class Drive:
    """One run's bookkeeping; chains run inline on the driver thread, branches on the pool."""

    def __init__(self, executor: LocalExecutor, plan: Plan, handle: RunHandle) -> None:
        self.executor = executor
        self.plan = plan
        self.handle = handle
        self.started = time.time()
        self.to_run, cached = executor.split_cached(plan)
        self.results: dict[str, NodeResult] = dict(cached)
        self.cached_ids = list(cached)
        self.executed: list[str] = []
        self.timings: dict[str, NodeTiming] = {}
        self.error: NodeError | None = None
        self.done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.queued: deque[str] = deque()
        self.runners = 0
        self.lock = threading.Lock()

    def loop(self) -> None:
        handle, plan = self.handle, self.plan
        try:
            started_event(handle, plan, self.to_run,
                          {n: self.results[n].ui for n in self.cached_ids})
            waiting = set(self.to_run)
            remaining = {n: sum(1 for d in plan.nodes[n].deps if d in waiting) for n in self.to_run}
            ready = deque(n for n in self.to_run if remaining[n] == 0)
            outstanding = 0  # handed to the runners, not settled yet
            while (ready or outstanding) and self.error is None and not handle.cancelled:
                if len(ready) == 1 and outstanding == 0:
                    # A chain: no thread hand-off, the node runs right here.
                    outcome = self._run_node(plan.nodes[ready.popleft()])
                else:
                    if ready:
                        outstanding += len(ready)
                        self._hand_over(ready)
                        ready.clear()
                    try:
                        outcome = self.done.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    outstanding -= 1
                for follower in self._settle(*outcome):
                    remaining[follower] -= 1
                    if remaining[follower] == 0:
                        ready.append(follower)
            self._finish()
        except Exception as exc:  # the engine itself failed: report it, never hang
            self.error = node_error("<engine>", "engine", exc)
            self._finish()

    def _hand_over(self, nodes: deque[str]) -> None:
        """Queue nodes for the runner threads, starting runners up to the pool's size.

        Runners pull from one shared queue until it is empty, so a wide fan-out costs a
        deque operation per node rather than a future and a pool hand-off.
        """
        with self.lock:
            self.queued.extend(nodes)
            # Every live runner may be busy with a long node: start one per queued node,
            # up to the pool's size.
            wanted = max(min(len(self.queued), self.executor.max_workers - self.runners), 0)
            self.runners += wanted
        for _ in range(wanted):
            self.executor._pool.submit(self._runner)

    def _runner(self) -> None:
        nodes = self.plan.nodes
        while True:
            try:
                node_id = self.queued.popleft()
            except IndexError:
                with self.lock:
                    if not self.queued:
                        self.runners -= 1
                        return
                continue
            if self.error is not None or self.handle.cancelled:
                continue  # drain: the run is ending
            self.done.put(self._run_node(nodes[node_id]))

    def _run_node(self, node: PlanNode) -> Outcome:
        handle = self.handle
        start = time.time()
        handle.emit(Event("node_started", handle.run_id, node.id, {"type": node.type}, start))
        ctx = NodeContext(handle.run_id, node.id, node.type, self._progress, handle.cancel_event,
                          self.executor.files, self.executor.models, handle.info)
        try:
            result = execute(node, gather(node, self._lookup), ctx)
            result.files = tuple(ctx.saved_files)
            return node.id, result, None, start, time.time()
        except BaseException as exc:  # reported as the node's failure below
            return node.id, None, exc, start, time.time()

    def _lookup(self, node_id: str) -> tuple[Any, ...]:
        return self.results[node_id].values

    def _progress(self, node_id: str, payload: dict[str, Any]) -> None:
        self.handle.emit(Event("node_progress", self.handle.run_id, node_id, payload))

    def _settle(self, node_id: str, result: NodeResult | None, exc: BaseException | None,
                start: float, end: float) -> list[str]:
        node = self.plan.nodes[node_id]
        self.timings[node_id] = NodeTiming.model_construct(start=start, end=end)
        if exc is not None:
            if is_cancellation(exc) and self.handle.cancelled:
                return []
            self.error = node_error(node_id, node.type, exc)
            self.handle.cancel_event.set()  # stop the other branches
            self.handle.emit(Event("node_failed", self.handle.run_id, node_id,
                                   self.error.model_dump(exclude={"traceback"})))
            return []
        assert result is not None
        # A result names the files of its inputs too: if any is deleted, it is stale.
        result.files = inherited(result.files, (self.results[d].files for d in node.deps))
        self.results[node_id] = result
        self.executed.append(node_id)
        if not node.volatile:
            size = sum(estimate_size(v) for v in result.values)
            self.executor.cache.put(node.signature, result, size)
        self.handle.emit(Event("node_finished", self.handle.run_id, node_id,
                               {"type": node.type, "seconds": end - start,
                                "ui": result.ui} if result.ui else
                               {"type": node.type, "seconds": end - start}, end))
        return self.plan.dependents[node_id]

    def _finish(self) -> None:
        handle, plan = self.handle, self.plan
        common = {"executed": self.executed, "cached": self.cached_ids, "timings": self.timings}
        if self.error is not None:
            result = handle.make("failed", self.started, error=self.error, **common)
        elif handle.cancelled:
            result = handle.make("cancelled", self.started, **common)
        else:
            outputs = {name: self.results[src].values[idx]
                       for name, (src, idx) in plan.outputs.items()}
            ui = {n: self.results[n].ui for n in plan.output_nodes
                  if n in self.results and self.results[n].ui}
            result = handle.make("success", self.started, outputs=outputs, ui=ui, **common)
        finished_event(handle, result)


def _local_gpus() -> int:
    """GPUs this process could use, without importing torch (it takes seconds)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))
