"""A model host: one loaded model, its counters, and batching where the backend allows.

The same class runs in-process (``LocalModels``) and inside a Ray actor (``RayModels``).
Backends are plain classes named in the manifest (``"module:Class"``), constructed with
``(manifest, weights_path, device)``. A backend lists methods that take a list of items in
``batchable = {"method": max_items}``, and streamed methods whose concurrent calls run
together in ``grouped = {"method": max_items}`` (see ``engine.models.group``; such a
method takes ``(calls, emit)`` and the backend's ``group_key(method, kwargs)`` says
which calls may share a run; an optional ``group_limit(method, kwargs)`` caps the items
of a run led by such a call).
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.errors import EngineError
from engine.models.batch import Batcher
from engine.models.group import END, Failed, StreamGroups
from engine.models.manifest import ModelManifest


class ModelHostError(EngineError):
    """A model could not be loaded or its host went away."""


class HostInfo(BaseModel):
    id: str
    kind: str
    device: str
    memory: int
    requests: int
    loaded_since: float
    batches: dict[str, dict[str, int]] = {}


def load_backend(manifest: ModelManifest, weights: Path, device: str) -> Any:
    module_name, _, class_name = manifest.backend.partition(":")
    try:
        backend_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelHostError(f"model '{manifest.id}': backend {manifest.backend} cannot be "
                             f"imported: {exc}") from exc
    if not weights.exists():
        raise ModelHostError(f"model '{manifest.id}': weights not found at {weights}")
    return backend_class(manifest, weights, device)


class Host:
    def __init__(self, manifest: ModelManifest, weights: str | Path, device: str) -> None:
        self.manifest = manifest
        self.device = device
        # All model work runs on this one thread. OpenMP (llama.cpp, torch) builds a thread
        # team per calling thread; calls arriving on ever new threads leave old teams
        # spinning, which cost a third of the speed on 2 cores.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"model-{manifest.id}")
        self.backend = self._worker.submit(load_backend, manifest, Path(weights),
                                           device).result()
        self.loaded_since = time.time()
        self.requests = 0
        batchable = getattr(self.backend, "batchable", {})
        if manifest.options.get("batching") is False:  # a manifest may turn batching off
            batchable = {}
        self.batchers = {name: Batcher(self._on_worker(getattr(self.backend, name)),
                                       max_items=size)
                         for name, size in batchable.items()}
        grouped = getattr(self.backend, "grouped", {})
        # Without batching a grouped method still goes through its groups (it takes a list
        # of calls), one call per run and no waiting for company.
        alone = manifest.options.get("batching") is False
        self.groups = {name: StreamGroups(
            getattr(self.backend, name),
            lambda kwargs, name=name: self.backend.group_key(name, kwargs),
            self._worker.submit, max_items=1 if alone else size,
            gather=0.0 if alone else float(manifest.options.get("batch_gather", 0.02)),
            limit=(lambda kwargs, name=name: self.backend.group_limit(name, kwargs))
            if hasattr(self.backend, "group_limit") else None)
            for name, size in grouped.items()}

    def _on_worker(self, function: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            return self._worker.submit(function, *args, **kwargs).result()
        return run

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        batcher = self.batchers.get(method)
        if batcher is not None and not kwargs and len(args) == 1:
            return batcher.submit(args[0])
        return self._on_worker(self._method(method))(*args, **kwargs)

    def stream(self, method: str, *args: Any, interval: float = 0.0,
               **kwargs: Any) -> Iterator[list[Any]]:
        """The backend's items in lists: all it produced since the consumer last asked.

        The backend runs on the host's worker thread, so a consumer that keeps up gets one
        item at a time and a slower one gets them coalesced. Methods in ``grouped`` share
        runs with concurrent calls of the same settings. ``interval`` > 0 spaces lists at least
        that far apart (the first comes at once): across processes every list costs CPU
        that a model sharing the cores would rather have.
        """
        self.requests += 1
        group = self.groups.get(method)
        if group is not None:
            if args:
                raise ModelHostError(f"'{method}' of model '{self.manifest.id}' takes "
                                     "keyword arguments only")
            call = group.submit(kwargs)
            # A consumer that stops early marks its call abandoned (see group.Emit).
            return _deliver(call.items, interval, call.abandoned)
        source = self._method(method)(*args, **kwargs)
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in source:
                    items.put(item)
                    if stop.is_set():
                        break
            except BaseException as exc:  # handed to the consumer below
                items.put(Failed(exc))
            finally:
                close = getattr(source, "close", None)
                if callable(close):
                    close()
                items.put(END)

        self._worker.submit(produce)
        return _deliver(items, interval, stop)

    def _method(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(self.backend, name, None)):
            raise ModelHostError(f"model '{self.manifest.id}' has no method '{name}'")
        return getattr(self.backend, name)

    def info(self) -> HostInfo:
        memory = getattr(self.backend, "memory_bytes", None) or self.manifest.resources.memory
        return HostInfo(id=self.manifest.id, kind=self.manifest.kind, device=self.device,
                        memory=int(memory), requests=self.requests,
                        loaded_since=self.loaded_since,
                        batches={name: {"batches": b.batches, "items": b.items}
                                 for name, b in [*self.batchers.items(),
                                                 *self.groups.items()]})

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            self._worker.submit(close).result()
        self._worker.shutdown(wait=False)


def _deliver(items: queue.SimpleQueue[Any], interval: float,
             stop: threading.Event | None = None) -> Iterator[list[Any]]:
    """Hand a producer's items on in lists, at most one list per ``interval``."""
    due = 0.0
    try:
        while True:
            batch = [items.get()]
            while interval and time.monotonic() < due and batch[-1] is not END \
                    and not isinstance(batch[-1], Failed):
                try:
                    batch.append(items.get(timeout=max(due - time.monotonic(), 0)))
                except queue.Empty:
                    break
            due = time.monotonic() + interval
            while True:
                try:
                    batch.append(items.get_nowait())
                except queue.Empty:
                    break
            ready = []
            for item in batch:
                if item is END:
                    if ready:
                        yield ready
                    return
                if isinstance(item, Failed):
                    raise item.error
                ready.append(item)
            yield ready
    finally:
        if stop is not None:
            stop.set()
