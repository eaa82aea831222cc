"""The code that runs inside Ray workers: one task runs a group of plan nodes.

A group is one node, or a chain of light nodes fused into one task. The task gets the
dependency groups' value dicts as resolved arguments (Ray moves them between workers;
the driver never touches them) and returns two objects: the value dict of its own
nodes, and small per-node metadata (timings, error, ui) that the driver reads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from engine.cache import estimate_size
from engine.context import NodeContext
from engine.errors import RunCancelled
from engine.executors.base import is_cancellation, node_error
from engine.invoke import execute, gather
from engine.plan import PlanNode, TemplateInput
from engine.registry import registry_for

FAILED = "__homepilot_failed__"
TEXT_INTERVAL = 0.05  # seconds between text progress pushes of one task


@dataclass(slots=True)
class TaskNode:
    """A plan node without its callables: what crosses to the worker."""

    id: str
    type: str
    consts: dict[str, Any]
    links: dict[str, tuple[str, int]]
    templates: dict[str, TemplateInput]
    mapped: bool
    list_inputs: frozenset[str]

    @classmethod
    def of(cls, node: PlanNode) -> TaskNode:
        return cls(node.id, node.type, node.consts, node.links, node.templates, node.mapped,
                   node.list_inputs)


@dataclass(slots=True)
class Task:
    """Everything a task needs besides its dependencies."""

    source_json: str
    run_id: str
    relay_name: str
    nodes: list[TaskNode]
    # upstream node id -> (index into the dependencies, key in that value dict): a cached
    # result may have been stored under another node's id (same signature).
    sources: dict[str, tuple[int, str]]
    info: dict[str, Any] | None = None  # the run's information (RunHandle.info)

    def pack(self) -> tuple[Any, ...]:
        """Plain tuples, lists and dicts: Ray serializes those with msgpack, several times
        faster than pickling dataclasses (this is most of the submission cost)."""
        nodes = [(n.id, n.type, n.consts, n.links, n.templates or None, n.mapped,
                  list(n.list_inputs)) for n in self.nodes]
        return (self.source_json, self.run_id, self.relay_name, nodes, self.sources,
                self.info or None)

    @classmethod
    def unpack(cls, packed: Any) -> Task:
        source_json, run_id, relay_name, nodes, sources, info = packed
        return cls(source_json, run_id, relay_name,
                   [TaskNode(i, t, c, {k: (v[0], v[1]) for k, v in links.items()},
                             templates or {}, mapped, frozenset(lists))
                    for i, t, c, links, templates, mapped, lists in nodes],
                   {k: (v[0], v[1]) for k, v in sources.items()}, info)


_relays: dict[str, Any] = {}


def _relay(name: str) -> Any:
    # Looked up once per worker: an actor handle per task argument costs a round trip.
    handle = _relays.get(name)
    if handle is None:
        import ray
        handle = _relays[name] = ray.get_actor(name)
    return handle


class ProgressSender:
    """A task's progress on its way to the relay, one push in flight at a time.

    While a push travels, later text deltas of the same node are merged (text joined,
    the latest step kept), so a model streaming faster than a round trip costs one
    message per round trip instead of one per token, and nothing waits on a timer.
    Step progress without text is never merged: every step is reported.
    """

    def __init__(self, relay_name: str, run_id: str) -> None:
        self.relay_name = relay_name
        self.run_id = run_id
        self.inflight: Any = None
        self.sent_at = 0.0
        self.waiting: dict[str, dict[str, Any]] = {}
        # Numbered per node: an async actor may run pushes out of order; the relay
        # puts them back in order.
        self.numbers: dict[str, int] = {}

    def __call__(self, node_id: str, payload: dict[str, Any]) -> None:
        merged = self.waiting.get(node_id)
        if "text" not in payload or (merged is not None and "text" not in merged):
            if self.waiting:
                self._send()
            self.waiting[node_id] = dict(payload)
            self._send()
            return
        if merged is None:
            self.waiting[node_id] = dict(payload)
        else:
            text = merged.get("text", "") + payload.get("text", "")
            merged.update(payload)
            if text:
                merged["text"] = text
        # Text goes out at most every TEXT_INTERVAL (the first delta at once): each push
        # costs the relay, the driver and the raylet some CPU a model would rather have.
        if (time.monotonic() - self.sent_at >= TEXT_INTERVAL
                and (self.inflight is None or self._arrived())):
            self._send()

    def _arrived(self) -> bool:
        import ray
        ready, _ = ray.wait([self.inflight], timeout=0)
        return bool(ready)

    def _send(self) -> None:
        relay = _relay(self.relay_name)
        for node_id, payload in self.waiting.items():
            number = self.numbers.get(node_id, 0)
            self.numbers[node_id] = number + 1
            self.inflight = relay.push.remote(self.run_id, node_id, number, payload,
                                              time.time())
        self.waiting.clear()
        self.sent_at = time.monotonic()

    def close(self) -> None:
        import ray
        if self.waiting:
            self._send()
        if self.inflight is not None:
            ray.get(self.inflight, timeout=30)


_model_client: list[Any] = []


def _models() -> Any:
    """This worker's client of the model manager actor (looked up once)."""
    if not _model_client:
        from engine.models.ray import RayModels
        _model_client.append(RayModels.connect())
    return _model_client[0]


def run_group(packed: Any, *dependencies: dict[str, Any]
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the task's nodes in order; returns their value dict and per-node metadata."""
    try:
        return _run_group(packed, dependencies)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt.__cause__, RunCancelled):
            raise  # a node saw the cancellation between steps: the worker is sound
        # Ray interrupts a cancelled task wherever it is, in the middle of an import too.
        # A module left half-imported breaks every later import of it in this process
        # (torch's C++ registrations outlive the failed import: "Only a single
        # TORCH_LIBRARY can register..."), so a worker interrupted at an unknown point
        # leaves, after the node's cleanup ran, and Ray starts a fresh one.
        os._exit(1)


def _run_group(packed: Any, dependencies: tuple[dict[str, Any], ...]
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    task = Task.unpack(packed)
    run_id, relay_name, sources = task.run_id, task.relay_name, task.sources
    registry = registry_for(task.source_json)
    values: dict[str, Any] = {node_id: dependencies[index][key]
                              for node_id, (index, key) in sources.items()}
    sink = ProgressSender(relay_name, run_id)
    metas: list[dict[str, Any]] = []
    produced: dict[str, Any] = {}
    for task_node in task.nodes:
        start = time.time()
        upstream = [src for src, _ in task_node.links.values()]
        upstream += [src for t in task_node.templates.values() for src, _ in t.links.values()]
        if any(_failed(values.get(src)) for src in upstream):
            produced[task_node.id] = values[task_node.id] = FAILED
            metas.append({"id": task_node.id, "start": start, "end": start, "skipped": True})
            continue
        definition = registry.get(task_node.type)
        meta: dict[str, Any] = {"id": task_node.id, "start": start}
        if definition is None:
            error = node_error(task_node.id, task_node.type, LookupError(
                f"node type {task_node.type} is not installed on this Ray worker's machine"))
            meta.update(end=time.time(), error=error.model_dump())
            produced[task_node.id] = values[task_node.id] = FAILED
            metas.append(meta)
            continue
        node = PlanNode(task_node.id, definition, task_node.consts, task_node.links,
                        task_node.templates, (), task_node.mapped, task_node.list_inputs)
        ctx = NodeContext(run_id, node.id, node.type, sink, None, None, _models, task.info)
        try:
            result = execute(node, gather(node, values.__getitem__), ctx)
        except Exception as exc:
            if is_cancellation(exc):
                raise KeyboardInterrupt from exc
            meta.update(end=time.time(), error=node_error(node.id, node.type, exc).model_dump())
            produced[node.id] = values[node.id] = FAILED
            metas.append(meta)
            continue
        produced[node.id] = values[node.id] = result.values
        meta.update(end=time.time(), size=sum(estimate_size(v) for v in result.values))
        if result.ui:
            meta["ui"] = result.ui
        if ctx.saved_files:
            meta["files"] = ctx.saved_files
        metas.append(meta)
    sink.close()  # progress must be in the relay before the driver sees this task finish
    return produced, metas


def _failed(value: Any) -> bool:
    # Compared by value: the marker crossed a process boundary as a pickled string.
    return isinstance(value, str) and value == FAILED


class Relay:
    """Carries progress events from workers to the driver: an async actor holding no CPU.

    The driver long-polls ``next``, which answers as soon as a run has events, so a
    streamed token reaches the client within milliseconds, not at the next poll.
    """

    def __init__(self) -> None:
        import asyncio

        self._asyncio = asyncio
        self._events: dict[str, list[tuple[str, dict[str, Any], float]]] = {}
        self._signals: dict[str, Any] = {}
        # (run, node) -> next expected number, and early arrivals by number
        self._expected: dict[tuple[str, str], int] = {}
        self._early: dict[tuple[str, str], dict[int, tuple[dict[str, Any], float]]] = {}

    def _signal(self, run_id: str) -> Any:
        signal = self._signals.get(run_id)
        if signal is None:
            signal = self._signals[run_id] = self._asyncio.Event()
        return signal

    async def push(self, run_id: str, node_id: str, number: int, payload: dict[str, Any],
                   ts: float) -> None:
        key = (run_id, node_id)
        early = self._early.setdefault(key, {})
        early[number] = (payload, ts)
        expected = self._expected.get(key, 0)
        ready = self._events.setdefault(run_id, [])
        while expected in early:
            payload, ts = early.pop(expected)
            ready.append((node_id, payload, ts))
            expected += 1
        self._expected[key] = expected
        if ready:
            self._signal(run_id).set()

    async def next(self, run_id: str, timeout: float) -> list[tuple[str, dict[str, Any], float]]:
        """The run's new events, waiting up to ``timeout`` seconds for some."""
        signal = self._signal(run_id)
        if not self._events.get(run_id):
            try:
                await self._asyncio.wait_for(signal.wait(), timeout)
            except TimeoutError:
                pass
        signal.clear()
        return self._events.pop(run_id, [])

    async def drain(self, run_id: str) -> list[tuple[str, dict[str, Any], float]]:
        """What is left of a finished run, and its bookkeeping forgotten."""
        self._signals.pop(run_id, None)
        for key in [k for k in self._expected if k[0] == run_id]:
            self._expected.pop(key, None)
            self._early.pop(key, None)
        return self._events.pop(run_id, [])

    async def close(self, run_id: str) -> None:
        """Wake a waiting ``next`` for a run that has ended."""
        self._signal(run_id).set()
