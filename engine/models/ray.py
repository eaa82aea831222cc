"""Model hosts as Ray actors: one named actor ``model:<id>`` per loaded model.

A small manager actor (``homepilot:models``) owns creation and least-recently-used
eviction under the memory budget, so every Ray worker sees the same set of hosts. Hosts
and the manager reserve no CPU: on a 2-core node, actors holding CPUs starve graph tasks.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import ray

from engine.models.host import Host, HostInfo, ModelHostError
from engine.models.store import ModelNotFoundError, ModelStore

MANAGER = "homepilot:models"
STREAM_INTERVAL = 0.05  # seconds between streamed lists from a host actor
# Grouped runs (diffusion) stream steps to every caller in the group: a progress bar moved
# five times a second is plenty, and each list costs CPU in three processes per caller.
GROUP_STREAM_INTERVAL = 0.2
NAMESPACE_HINT = "model:"


class HostActor:
    """The actor body: a ``Host`` on whatever device Ray gave this process."""

    def __init__(self, manifest_json: str, weights: str) -> None:
        from engine.models.manifest import ModelManifest

        manifest = ModelManifest.model_validate_json(manifest_json)
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.host = Host(manifest, weights, device)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.host.call(method, *args, **kwargs)

    def stream(self, method: str, *args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        # Each list is a Ray object: at most ~20 a second leaves the model the cores.
        interval = GROUP_STREAM_INTERVAL if method in self.host.groups else STREAM_INTERVAL
        inner = self.host.stream(method, *args, interval=interval, **kwargs)
        context = ray.get_runtime_context()
        try:
            for batch in inner:
                yield batch
                # ray.cancel cannot interrupt a threaded actor; it sets this flag instead.
                if context.is_canceled():
                    return
        finally:
            inner.close()  # tells a grouped run its caller has gone

    def info(self) -> dict[str, Any]:
        info = self.host.info().model_dump()
        info["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
        return info


class Manager:
    """Creates hosts on first use, keeps them resident, evicts the least recently used."""

    def __init__(self, store_root: str, budget_bytes: int, prefix: str = "model:") -> None:
        self.store = ModelStore(store_root)
        self.budget = budget_bytes
        self.prefix = prefix
        # model id -> (actor, declared bytes, GPUs asked for), least recently used first
        self.hosts: OrderedDict[str, tuple[Any, int, float]] = OrderedDict()
        self.evicted: list[str] = []
        self.created = 0

    def acquire(self, kind: str, model_id: str = "") -> tuple[str, Any]:
        """(model id, actor handle); raises ModelNotFoundError with the installed list."""
        manifest = self.store.resolve(kind, model_id)
        entry = self.hosts.get(manifest.id)
        if entry is not None:
            self.hosts.move_to_end(manifest.id)
            return manifest.id, entry[0]
        memory = manifest.resources.memory
        while self.hosts and sum(e[1] for e in self.hosts.values()) + memory > self.budget:
            evicted_id, (actor, _, _) = self.hosts.popitem(last=False)
            ray.kill(actor)
            self.evicted.append(evicted_id)
        gpus = manifest.resources.gpu if ray.cluster_resources().get("GPU", 0) > 0 else 0
        # Ray caps OMP_NUM_THREADS at a task's CPU count (1 for num_cpus=0), which would
        # leave llama.cpp and torch one thread: give the host the machine's cores.
        threads = str(manifest.options.get("threads") or os.cpu_count() or 1)
        actor = ray.remote(HostActor).options(
            name=f"{self.prefix}{manifest.id}", num_cpus=0, num_gpus=gpus, max_concurrency=64,
            get_if_exists=True, runtime_env={"env_vars": {"OMP_NUM_THREADS": threads}},
        ).remote(manifest.model_dump_json(), str(self.store.weights(manifest)))
        self.created += 1
        self.hosts[manifest.id] = (actor, memory, gpus)
        return manifest.id, actor

    def forget(self, model_id: str, dead: Any = None) -> None:
        """A host died: drop it so the next ``acquire`` creates a new one. ``dead`` is the
        actor the caller saw die: when several callers saw it, the first one's new host
        is already in place and must not be killed by the others."""
        entry = self.hosts.get(model_id)
        if entry is not None and dead is not None and \
                entry[0]._actor_id != dead._actor_id:
            return
        entry = self.hosts.pop(model_id, None)
        if entry is not None:
            try:
                ray.kill(entry[0])
            except Exception:  # already gone, which is why we are here
                pass

    def unload(self, model_id: str) -> bool:
        present = model_id in self.hosts
        self.forget(model_id)
        return present

    def status(self) -> list[dict[str, Any]]:
        infos = []
        for model_id, (actor, _, gpus) in list(self.hosts.items()):
            try:
                info = ray.get(actor.info.remote(), timeout=10)
            except Exception as exc:  # loading, or dead: report rather than fail
                info = {"id": model_id, "state": f"unavailable: {type(exc).__name__}"}
            info["num_gpus"] = gpus
            infos.append(info)
        return infos

    def facts(self) -> dict[str, Any]:
        return {"resident": list(self.hosts), "evicted": list(self.evicted),
                "created": self.created}


class RayHandle:
    def __init__(self, models: RayModels, kind: str, model_id: str, actor: Any,
                 retry: bool) -> None:
        self.models, self.kind, self.id = models, kind, model_id
        self.actor, self.retry = actor, retry
        self.device = "ray"

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return ray.get(self.actor.call.remote(method, *args, **kwargs))
        except ray.exceptions.RayActorError as exc:
            self._replace(exc)
            return ray.get(self.actor.call.remote(method, *args, **kwargs))

    def stream(self, method: str, *args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        """Items in lists, one Ray object per list (see ``Host.stream``)."""
        for attempt in (1, 2):
            generator = self.actor.stream.options(num_returns="streaming").remote(
                method, *args, **kwargs)
            yielded = False
            try:
                for ref in generator:
                    item = ray.get(ref)
                    yielded = True
                    yield item
                return
            except (GeneratorExit, KeyboardInterrupt):
                # The consumer stopped, or Ray interrupted its cancelled task while it
                # waited here for the next list: either way the host's run must stop.
                ray.cancel(generator)
                raise
            except ray.exceptions.RayActorError as exc:
                # Nothing was streamed yet: starting over on a new host is safe.
                self._replace(exc, retry=attempt == 1 and not yielded and self.retry)

    def _replace(self, exc: BaseException, retry: bool | None = None) -> None:
        """Have the manager start a new host; retry once only when the caller may."""
        ray.get(self.models.manager.forget.remote(self.id, self.actor))
        _, self.actor = ray.get(self.models.manager.acquire.remote(self.kind, self.id))
        if not (self.retry if retry is None else retry):
            raise ModelHostError(f"the host of model '{self.id}' died while serving this node "
                                 f"({type(exc).__name__}); it has been restarted, run again") \
                from exc


class RayModels:
    """What a node's context uses under Ray (in any worker)."""

    def __init__(self, manager: Any, retry: bool = True) -> None:
        self.manager = manager
        self.retry = retry

    @classmethod
    def start(cls, store: ModelStore, budget_bytes: int, name: str = MANAGER,
              prefix: str = "model:") -> RayModels:
        """The manager actor ``name`` (joined if it exists); hosts are named prefix+id."""
        manager = ray.remote(Manager).options(
            name=name, num_cpus=0, max_concurrency=16, get_if_exists=True).remote(
            str(store.root), budget_bytes, prefix)
        return cls(manager)

    @classmethod
    def connect(cls, retry: bool = True) -> RayModels:
        return cls(ray.get_actor(MANAGER), retry)

    def get(self, kind: str, model_id: str = "", idempotent: bool = True) -> RayHandle:
        try:
            resolved, actor = ray.get(self.manager.acquire.remote(kind, model_id))
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ModelNotFoundError):
                raise ModelNotFoundError(str(cause)) from None
            raise
        return RayHandle(self, kind, resolved, actor, self.retry and idempotent)

    def status(self) -> list[HostInfo | dict[str, Any]]:
        return ray.get(self.manager.status.remote(), timeout=30)

    def facts(self) -> dict[str, Any]:
        return ray.get(self.manager.facts.remote(), timeout=30)

    def unload(self, model_id: str) -> bool:
        return ray.get(self.manager.unload.remote(model_id), timeout=30)
