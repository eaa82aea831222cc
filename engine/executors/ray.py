"""The Ray executor: every node (or fused chain of light nodes) is a named Ray task.

Values move between tasks as ObjectRefs; the driver reads only small metadata to emit
events, fill the cache (which holds refs) and report timings.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import ray

from engine.cache import OutputCache
from engine.errors import EngineError, NodeError
from engine.events import Event
from engine.executors.base import (
    Executor,
    finished_event,
    inherited,
    node_error,
    started_event,
)
from engine.executors.raytask import FAILED, Relay, Task, TaskNode, run_group
from engine.models.ray import RayModels
from engine.models.store import ModelStore
from engine.plan import Plan
from engine.registry import Registry, remember
from engine.run import NodeTiming, RunHandle
from engine.settings import get_settings

log = logging.getLogger("homepilot.ray")

_remote_group = ray.remote(num_returns=2, max_retries=0)(run_group)
# How a task can end without metadata: cancelled, raised in Ray, or its worker (or the
# machine it ran on) died and no retry was left.
_TASK_ENDED = (ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError,
               ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
               ray.exceptions.ObjectLostError)
# Logical CPUs a model-bound node's task holds while it waits on its model host.
MODEL_TASK_CPUS = 0.25


@dataclass(slots=True)
class Entry:
    """A cache entry under Ray: the ref of the value dict holding this node's outputs."""

    ref: ray.ObjectRef
    key: str            # the node id the value dict holds this result under
    ui: dict[str, Any] | None
    files: tuple[str, ...] = ()  # file-store ids the execution saved


def ensure_ray(address: str | None = None, dashboard: bool | None = None,
               **init_kwargs: Any) -> str | None:
    """Join ``address`` or start a local Ray (the embedded default) if none is running.

    Returns the dashboard URL when this call started or joined Ray with one.
    """
    if ray.is_initialized():
        return None
    settings = get_settings()
    include_dashboard = settings.ray_dashboard if dashboard is None else dashboard
    address = address or settings.ray_address
    kwargs: dict[str, Any] = {"address": address, "include_dashboard": include_dashboard,
                              "logging_level": logging.WARNING, "log_to_driver": True}
    if not address:  # starting Ray here: its settings are ours
        # Without an address ray.init() joins whatever RAY_ADDRESS or the last `ray start`
        # names: another user's cluster, or another HomePilot's. "local" always starts ours.
        kwargs["address"] = "local"
        if os.environ.get("RAY_ADDRESS"):
            log.warning("RAY_ADDRESS=%s is ignored: HomePilot starts its own Ray unless "
                        "given --ray-address (or HOMEPILOT_RAY_ADDRESS)",
                        os.environ["RAY_ADDRESS"])
        kwargs["_system_config"] = {"num_workers_soft_limit": settings.ray_warm_workers}
        if include_dashboard:
            kwargs["dashboard_host"] = DASHBOARD_HOST
            kwargs["dashboard_port"] = dashboard_port(settings.ray_dashboard_port)
    kwargs.update(init_kwargs)
    context = ray.init(**kwargs)
    url = getattr(context, "dashboard_url", None)
    return f"http://{url}" if url else None


DASHBOARD_HOST = "127.0.0.1"


def _retried(plan: Plan, group: list[str]) -> bool:
    """Whether a task whose worker died runs again: only if every node in it may."""
    return all(plan.nodes[n].definition.spec.idempotent for n in group)


def dashboard_port(wanted: int, tries: int = 100) -> int:
    """``wanted`` if nothing listens there, else the next free port after it.

    Ray refuses to start when the dashboard port it is given is taken (another HomePilot,
    another Ray on this machine). Two servers starting in the same instant can still pick
    the same port; the second then fails as before.
    """
    for port in range(wanted, min(wanted + tries, 65536)):
        if _free(DASHBOARD_HOST, port):
            if port != wanted:
                log.warning("the Ray dashboard port %d is taken (another Ray or HomePilot "
                            "on this machine?); the dashboard uses %d", wanted, port)
            return port
    raise EngineError(f"no free port for the Ray dashboard in {wanted}..{wanted + tries - 1}; "
                      "set HOMEPILOT_RAY_DASHBOARD_PORT or HOMEPILOT_RAY_DASHBOARD=false")


def _free(host: str, port: int) -> bool:
    # The same test Ray makes: SO_REUSEADDR, so that a port only in TIME_WAIT (a server
    # that just stopped) counts as free, and only a listener makes it taken.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, registry: Registry, cache: OutputCache | None = None, *,
                 address: str | None = None, fuse: bool | None = None,
                 dashboard: bool | None = None, task_cpus: float = 1.0,
                 **init_kwargs: Any) -> None:
        super().__init__(registry, cache)
        if registry.source is None:
            raise EngineError("the Ray executor needs a registry built from a RegistrySource "
                              "(nodes.build_registry) so that workers can rebuild it")
        self.dashboard_url = ensure_ray(address, dashboard, **init_kwargs)
        remember(registry)
        self.fuse = get_settings().ray_fuse if fuse is None else fuse
        self.task_cpus = task_cpus
        self._source_json = registry.source.model_dump_json()
        # Progress from workers flows through one small actor that holds no CPU.
        self._relay_name = f"homepilot:relay:{uuid.uuid4().hex[:12]}"
        self._relay = ray.remote(num_cpus=0)(Relay).options(name=self._relay_name).remote()
        settings = get_settings()
        self.models = RayModels.start(ModelStore(settings.models_dir),
                                      settings.model_memory_budget)

    # -- cluster facts ------------------------------------------------------------------

    def gpu_count(self) -> float:
        return float(ray.cluster_resources().get("GPU", 0))

    def status(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        info = super().status()
        info.update({
            "ray_address": context.gcs_address,
            "dashboard_url": self.dashboard_url,
            "dashboard_token_file": os.path.expanduser("~/.ray/auth_token"),
            "cluster_resources": ray.cluster_resources(),
            "available_resources": ray.available_resources(),
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "fuse": self.fuse})
        return info

    def model_status(self) -> list[dict[str, Any]]:
        return self.models.status()

    def close(self) -> None:
        ray.kill(self._relay)

    # -- running ------------------------------------------------------------------------

    def _start(self, plan: Plan, handle: RunHandle) -> None:
        threading.Thread(target=RayDrive(self, plan, handle).loop, daemon=True,
                         name=f"homepilot-ray-{handle.run_id[:8]}").start()

    def groups(self, plan: Plan, to_run: list[str]) -> list[list[str]]:
        """Nodes per task: chains of light nodes share one task when fusing is on."""
        running = set(to_run)
        groups: list[list[str]] = []
        group_of: dict[str, int] = {}
        fanout = {n: sum(1 for d in plan.dependents[n] if d in running) for n in to_run}
        for node_id in to_run:
            node = plan.nodes[node_id]
            upstream = [d for d in node.deps if d in running]
            if self.fuse and len(upstream) == 1 and node.definition.spec.fusable:
                source = upstream[0]
                group = groups[group_of[source]]
                if (group[-1] == source and fanout[source] == 1
                        and plan.nodes[source].definition.spec.fusable):
                    group.append(node_id)
                    group_of[node_id] = group_of[source]
                    continue
            group_of[node_id] = len(groups)
            groups.append([node_id])
        return groups

    def remote(self, plan: Plan, group: list[str]) -> Any:
        """The task function with this group's options (its name is unique per node)."""
        return _remote_group.options(**self.task_options(plan, group))

    def task_options(self, plan: Plan, group: list[str]) -> dict[str, Any]:
        first = plan.nodes[group[0]]
        name = f"{plan.graph_name}/{first.id}:{first.type}"
        if len(group) > 1:
            name = f"{plan.graph_name}/{first.id}..{group[-1]}:fused[{len(group)}]"
        options: dict[str, Any] = {"name": name, "num_cpus": self.task_cpus}
        # A worker that dies mid-task (killed, out of memory, its machine gone) takes the
        # task with it: Ray runs it again elsewhere once, unless a node in it may not run
        # twice. Failures the nodes raise themselves are never retried.
        if _retried(plan, group):
            options["max_retries"] = 1
        if first.definition.spec.model_kind is not None:
            # The model's work happens on its host actor while this task waits for it. A
            # whole logical CPU each would let only as many requests reach the host at
            # once as there are cores, and the host could never batch the rest.
            options["num_cpus"] = min(self.task_cpus, MODEL_TASK_CPUS)
        resources = first.definition.spec.resources
        if len(group) == 1 and resources is not None:
            if resources.cpu is not None:
                options["num_cpus"] = resources.cpu
            if resources.gpu > 0 and (resources.requires_gpu or self.gpu_count() >= resources.gpu):
                options["num_gpus"] = resources.gpu
            if resources.memory:
                options["memory"] = resources.memory
        return options


# meta ref -> (the group's node ids, its value ref)
Pending = dict[ray.ObjectRef, tuple[list[str], ray.ObjectRef]]


class RayDrive:
    """One run on Ray: submit every task up front, then follow their metadata."""

    def __init__(self, executor: RayExecutor, plan: Plan, handle: RunHandle) -> None:
        self.executor = executor
        self.plan = plan
        self.handle = handle
        self.started = time.time()
        self.executed: list[str] = []
        self.timings: dict[str, NodeTiming] = {}
        self.ui: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.error: NodeError | None = None
        self.stopped = False
        # File ids each node's result depends on (its own and its inputs'); groups settle
        # in submission order, which is topological, so inputs are known first.
        self.files: dict[str, tuple[str, ...]] = {}

    def loop(self) -> None:
        handle, plan = self.handle, self.plan
        try:
            to_run, cached = self.executor.split_cached(plan)
            started_event(handle, plan, to_run, {n: e.ui for n, e in cached.items()})
            refs: dict[str, ray.ObjectRef] = {n: e.ref for n, e in cached.items()}
            self.keys = {n: e.key for n, e in cached.items()}
            self.ui = {n: e.ui for n, e in cached.items() if e.ui}
            self.files = {n: e.files for n, e in cached.items()}
            pending = self._submit(to_run, refs)
            pump = threading.Thread(target=self._pump, daemon=True,
                                    name=f"homepilot-progress-{handle.run_id[:8]}")
            pump.start()
            try:
                self._follow(pending)
            finally:
                self._stop_pump(pump)
            self._finish(refs, list(cached))
        except Exception as exc:  # the engine or Ray itself failed: report, never hang
            # A cancelled run stays cancelled: a server stopping on a signal sent to its
            # whole process group cancels its runs while Ray's processes die under them.
            if not handle.cancelled:
                log.exception("ray run %s failed", handle.run_id)
                self.error = self.error or node_error("<engine>", "engine", exc)
            self._finish({}, [])

    def _submit(self, to_run: list[str], refs: dict[str, ray.ObjectRef]) -> Pending:
        executor, plan, handle = self.executor, self.plan, self.handle
        pending: Pending = {}
        for group in executor.groups(plan, to_run):
            members = set(group)
            dep_refs: dict[ray.ObjectRef, int] = {}
            sources: dict[str, tuple[int, str]] = {}
            for node_id in group:
                for dep in plan.nodes[node_id].deps:
                    if dep in members or dep in sources:
                        continue
                    index = dep_refs.setdefault(refs[dep], len(dep_refs))
                    sources[dep] = (index, self.keys.get(dep, dep))
            payload = [TaskNode.of(plan.nodes[n]) for n in group]
            # The run's information only goes to tasks whose nodes show something (the
            # output nodes that write it into files): it can be a whole ComfyUI workflow.
            shows = any(plan.nodes[n].definition.spec.output_node for n in group)
            task = Task(executor._source_json, handle.run_id, executor._relay_name, payload,
                        sources, handle.info if shows else None)
            value_ref, meta_ref = executor.remote(plan, group).remote(task.pack(),
                                                                      *dep_refs.keys())
            for node_id in group:
                refs[node_id] = value_ref
                self.keys[node_id] = node_id
            pending[meta_ref] = (group, value_ref)
        return pending

    def _follow(self, pending: Pending) -> None:
        handle = self.handle
        while pending and self.error is None:
            if handle.cancelled:
                for _, value_ref in pending.values():
                    ray.cancel(value_ref, force=False)
                return
            # Everything was submitted up front: collect whatever finished every 50 ms
            # (returns at once when all is done) rather than waking per task, which
            # would take CPU from the workers on a small machine.
            # Tasks finish roughly in submission (topological) order, so watching the
            # oldest few hundred keeps each poll small on 5,000-node graphs.
            window = list(itertools.islice(pending, 512))
            ready, _ = ray.wait(window, num_returns=len(window), timeout=0.05)
            for meta_ref, metas in zip(ready, self._fetch(ready), strict=True):
                group, value_ref = pending.pop(meta_ref)
                self._settle(group, value_ref, metas)
        if self.error is not None:
            for _, value_ref in pending.values():
                ray.cancel(value_ref, force=False)

    def _pump(self) -> None:
        """Forward progress events as they arrive (long-polling the relay)."""
        relay, run_id = self.executor._relay, self.handle.run_id
        while not self.stopped:
            try:
                events = ray.get(relay.next.remote(run_id, 0.5), timeout=30)
            except ray.exceptions.RayError:
                return
            self._emit_progress(events)

    def _stop_pump(self, pump: threading.Thread) -> None:
        """Stop forwarding, then deliver what is left: all progress precedes the run's end."""
        self.stopped = True
        self.executor._relay.close.remote(self.handle.run_id)
        pump.join(10)
        self._emit_progress(ray.get(self.executor._relay.drain.remote(self.handle.run_id),
                                    timeout=30))

    def _emit_progress(self, events: list[tuple[str, dict[str, Any], float]]) -> None:
        for node_id, payload, ts in events:
            self.handle.emit(Event("node_progress", self.handle.run_id, node_id, payload, ts))

    @staticmethod
    def _fetch(ready: list[ray.ObjectRef]) -> list[Any]:
        """Metadata of finished tasks in one call; a task that died (cancelled, failed, or
        its worker gone for good) gives its exception, reported as its node's failure."""
        try:
            return ray.get(ready, timeout=60)
        except _TASK_ENDED:
            fetched: list[Any] = []
            for ref in ready:
                try:
                    fetched.append(ray.get(ref, timeout=60))
                except _TASK_ENDED as exc:
                    fetched.append(exc)
            return fetched

    def _settle(self, group: list[str], value_ref: ray.ObjectRef, metas: Any) -> None:
        handle, plan = self.handle, self.plan
        if isinstance(metas, Exception):
            # A task whose input task died fails with the same error: the first one to
            # settle (groups settle in submission order) is the node that failed.
            if not handle.cancelled and self.error is None:
                first = plan.nodes[group[0]]
                self.error = node_error(first.id, first.type, metas)
                if isinstance(metas, ray.exceptions.WorkerCrashedError | ray.exceptions.
                              NodeDiedError):
                    self.error.message = (
                        "the Ray worker running this node died (killed, out of memory, or its "
                        "machine went away)" + ("; it was run again and died again"
                                                if _retried(plan, group)
                                                else "; it may not run twice (it has effects "
                                                "beyond its outputs), so it was not retried"))
            return
        for meta in metas:
            if meta.get("skipped"):
                continue
            node = plan.nodes[meta["id"]]
            self.timings[node.id] = NodeTiming.model_construct(start=meta["start"], end=meta["end"])
            handle.emit(Event("node_started", handle.run_id, node.id, {"type": node.type},
                              meta["start"]))
            if meta.get("error"):
                self.error = NodeError.model_validate(meta["error"])
                handle.emit(Event("node_failed", handle.run_id, node.id,
                                  self.error.model_dump(exclude={"traceback"}), meta["end"]))
                continue
            self.executed.append(node.id)
            if meta.get("ui"):
                self.ui[node.id] = meta["ui"]
            files = self.files[node.id] = inherited(
                tuple(meta.get("files", ())), (self.files.get(d, ()) for d in node.deps))
            if not node.volatile:
                self.executor.cache.put(node.signature, Entry(value_ref, node.id, meta.get("ui"),
                                                              files),
                                        meta.get("size", 64))
            data = {"type": node.type, "seconds": meta["end"] - meta["start"]}
            if meta.get("ui"):
                data["ui"] = meta["ui"]
            handle.emit(Event("node_finished", handle.run_id, node.id, data, meta["end"]))

    def _finish(self, refs: dict[str, ray.ObjectRef], cached: list[str]) -> None:
        handle, plan = self.handle, self.plan
        common = {"executed": self.executed, "cached": cached, "timings": self.timings}
        if self.error is not None:
            result = handle.make("failed", self.started, error=self.error, **common)
        elif handle.cancelled:
            result = handle.make("cancelled", self.started, **common)
        else:
            wanted = {src for src, _ in plan.outputs.values()}
            fetched = dict(zip(wanted, ray.get([refs[n] for n in wanted], timeout=600),
                               strict=True))
            outputs = {}
            for name, (src, idx) in plan.outputs.items():
                values = fetched[src][self.keys[src]]
                if isinstance(values, str) and values == FAILED:
                    raise EngineError(f"output {name} comes from a failed node {src}")
                outputs[name] = values[idx]
            ui = {n: self.ui[n] for n in plan.output_nodes if n in self.ui}
            result = handle.make("success", self.started, outputs=outputs, ui=ui, **common)
        finished_event(handle, result)
