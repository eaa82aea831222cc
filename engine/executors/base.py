"""What every executor shares: compile, sign, consult the cache, report results."""

from __future__ import annotations

import abc
import traceback
import uuid
from typing import Any

from engine.cache import OutputCache
from engine.compiler import compile_graph
from engine.errors import GraphValidationError, NodeError, RunCancelled, ValidationIssue
from engine.events import Event
from engine.files import FileStore
from engine.graph import Graph
from engine.plan import Plan
from engine.registry import Registry
from engine.run import Listener, RunHandle, RunResult
from engine.settings import get_settings
from engine.signature import sign


class Executor(abc.ABC):
    name = "executor"
    # The store nodes save to; None: the settings' default (what Ray workers use).
    files: FileStore | None = None

    def __init__(self, registry: Registry, cache: OutputCache | None = None) -> None:
        settings = get_settings()
        self.registry = registry
        self.cache = cache or OutputCache(settings.cache_max_entries, settings.cache_max_bytes)

    # -- the interface ------------------------------------------------------------------

    def submit(self, graph: Graph, inputs: dict[str, Any] | None = None, *,
               outputs: list[str] | None = None, run_id: str | None = None,
               listener: Listener | None = None,
               info: dict[str, Any] | None = None) -> RunHandle:
        """Validate and start a run; raises ``GraphValidationError`` before anything runs.
        ``info`` is what nodes may read about the run (``NodeContext.run_info``)."""
        plan = self.prepare(graph, inputs, outputs)
        handle = RunHandle(run_id or uuid.uuid4().hex, plan.graph_name, self.name, info)
        if listener is not None:
            handle.subscribe(listener)
        self._start(plan, handle)
        return handle

    def run(self, graph: Graph, inputs: dict[str, Any] | None = None, *,
            outputs: list[str] | None = None, run_id: str | None = None,
            listener: Listener | None = None, timeout: float | None = None,
            info: dict[str, Any] | None = None) -> RunResult:
        """Run to the end and return the result (failed runs return, they do not raise)."""
        return self.submit(graph, inputs, outputs=outputs, run_id=run_id,
                           listener=listener, info=info).result(timeout)

    def prepare(self, graph: Graph, inputs: dict[str, Any] | None = None,
                outputs: list[str] | None = None) -> Plan:
        plan = compile_graph(graph, self.registry, inputs, outputs)
        problems = self.placement_issues(plan)
        if problems:
            raise GraphValidationError(problems)
        sign(plan)
        return plan

    def placement_issues(self, plan: Plan) -> list[ValidationIssue]:
        """Nodes that cannot run here (a GPU-only node on a cluster without GPUs)."""
        gpus = None
        issues = []
        for node in plan.nodes.values():
            resources = node.definition.spec.resources
            if resources is not None and resources.requires_gpu:
                gpus = self.gpu_count() if gpus is None else gpus
                if gpus < resources.gpu:
                    issues.append(ValidationIssue(
                        kind="gpu_unavailable", node_id=node.id, node_type=node.type,
                        message=f"{node.type} needs {resources.gpu:g} GPU but the "
                                f"{self.name} executor has {gpus:g}; run on a machine or "
                                "Ray cluster with a GPU"))
        return issues

    @abc.abstractmethod
    def gpu_count(self) -> float: ...

    @abc.abstractmethod
    def _start(self, plan: Plan, handle: RunHandle) -> None: ...

    def status(self) -> dict[str, Any]:
        return {"executor": self.name, "cache": self.cache.stats(),
                "models": self.model_status()}

    def model_status(self) -> list[dict[str, Any]]:
        """The resident model hosts (id, device, memory, requests, loaded since)."""
        return []

    def clear_cache(self) -> None:
        self.cache.clear()

    def close(self) -> None:  # noqa: B027 (a no-op unless the executor holds resources)
        """Release what the executor holds (threads, Ray actors)."""

    # -- helpers for implementations -------------------------------------------------------

    def file_store(self) -> FileStore:
        """Where this executor's nodes save files."""
        return self.files or FileStore.default()

    def _files_remain(self, entry: Any) -> bool:
        files = getattr(entry, "files", ())
        if not files:
            return True
        store = self.file_store()
        return all(store.exists(file_id) for file_id in files)

    def split_cached(self, plan: Plan) -> tuple[list[str], dict[str, Any]]:
        """Which nodes must run, and the cache entries that spare the others.

        Walks back from the targets and stops at cache hits, so a cached node's
        ancestors are not even looked at.
        """
        cached: dict[str, Any] = {}
        needed: set[str] = set()
        stack = list(plan.targets)
        while stack:
            node_id = stack.pop()
            if node_id in needed or node_id in cached:
                continue
            node = plan.nodes[node_id]
            if not node.volatile:
                hit = self.cache.get(node.signature)
                if hit is not None and self._files_remain(hit):
                    cached[node_id] = hit
                    continue
                if hit is not None:  # a file it names was deleted: compute it again
                    self.cache.discard(node.signature)
            needed.add(node_id)
            stack.extend(node.deps)
        to_run = [node_id for node_id in plan.nodes if node_id in needed]
        return to_run, cached


def node_error(node_id: str, node_type: str, exc: BaseException) -> NodeError:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return NodeError(node_id=node_id, node_type=node_type, error_type=type(exc).__name__,
                     message=str(exc) or type(exc).__name__, traceback=lines[-12:])


def inherited(own: tuple[str, ...], inputs: Any) -> tuple[str, ...]:
    """The file ids a cached result depends on: its own and its inputs', each once."""
    merged = dict.fromkeys(own)
    for files in inputs:
        merged.update(dict.fromkeys(files))
    return tuple(merged)


def started_event(handle: RunHandle, plan: Plan, to_run: list[str],
                  cached_ui: dict[str, dict[str, Any] | None]) -> None:
    """`cached_ui` maps each cached node to the UI dict it showed when it ran (or None)."""
    handle.status = "running"
    handle.emit(Event("run_started", handle.run_id, data={
        "graph": plan.graph_name, "nodes": len(plan.nodes), "to_run": len(to_run),
        "executor": handle.executor}))
    # Always sent, even empty: clients (ComfyUI's among them) wait for it. The UI of cached
    # nodes travels with it because ComfyUI re-sends a cached output node's `executed`.
    handle.emit(Event("node_cached", handle.run_id, data={
        "nodes": list(cached_ui), "ui": {n: ui for n, ui in cached_ui.items() if ui}}))


def finished_event(handle: RunHandle, result: RunResult) -> None:
    kind = {"success": "run_finished", "failed": "run_failed",
            "cancelled": "run_cancelled"}[result.status]
    data: dict[str, Any] = {"status": result.status, "executed": len(result.executed),
                            "cached": len(result.cached)}
    if result.error is not None:
        data["error"] = result.error.model_dump()
    handle.emit(Event(kind, handle.run_id, data=data))
    handle.finish(result)


def is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, (RunCancelled, KeyboardInterrupt))
