"""Model hosts in this process, for the LocalExecutor: same API as the Ray actors."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from engine.models.host import Host, HostInfo
from engine.models.store import ModelStore


class LocalHandle:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.id = host.manifest.id
        self.device = host.device

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.host.call(method, *args, **kwargs)

    def stream(self, method: str, *args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        """Items in lists (what the model produced since the last one)."""
        return self.host.stream(method, *args, **kwargs)


class LocalModels:
    """Loaded models stay resident; the least recently used go when the budget is full."""

    def __init__(self, store: ModelStore, budget_bytes: int, gpus: float = 0.0) -> None:
        self.store = store
        self.budget = budget_bytes
        self.gpus = gpus
        self._hosts: OrderedDict[str, Host] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.evicted: list[str] = []

    def get(self, kind: str, model_id: str = "", idempotent: bool = True) -> LocalHandle:
        manifest = self.store.resolve(kind, model_id)
        with self._lock:
            host = self._hosts.get(manifest.id)
            if host is not None:
                self._hosts.move_to_end(manifest.id)
                return LocalHandle(host)
            loading = self._loading.setdefault(manifest.id, threading.Lock())
        with loading:  # one load per model, however many nodes ask at once
            with self._lock:
                host = self._hosts.get(manifest.id)
            if host is None:
                self._make_room(manifest.resources.memory)
                device = "cuda" if manifest.resources.gpu > 0 and self.gpus > 0 else "cpu"
                host = Host(manifest, self.store.weights(manifest), device)
                with self._lock:
                    self._hosts[manifest.id] = host
        return LocalHandle(host)

    def _make_room(self, needed: int) -> None:
        with self._lock:
            while self._hosts and self._resident_bytes() + needed > self.budget:
                model_id, host = self._hosts.popitem(last=False)
                host.close()
                self.evicted.append(model_id)

    def _resident_bytes(self) -> int:
        return sum(h.manifest.resources.memory for h in self._hosts.values())

    def unload(self, model_id: str) -> bool:
        with self._lock:
            host = self._hosts.pop(model_id, None)
        if host is not None:
            host.close()
        return host is not None

    def resident(self) -> list[str]:
        return list(self._hosts)

    def status(self) -> list[HostInfo]:
        with self._lock:
            hosts = list(self._hosts.values())
        return [h.info() for h in hosts]

    def close(self) -> None:
        for model_id in list(self._hosts):
            self.unload(model_id)
