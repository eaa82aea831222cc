"""ComfyUI WebSocket clients by ``clientId``; messages reach them from any thread.

A client's queue carries text (JSON messages) and bytes (binary frames: previews)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class ClientHub:
    def __init__(self) -> None:
        self._clients: dict[str, set[asyncio.Queue[str | bytes]]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def connect(self, client_id: str) -> asyncio.Queue[str | bytes]:
        self.loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._clients.setdefault(client_id, set()).add(queue)
        return queue

    def disconnect(self, client_id: str, queue: asyncio.Queue[str | bytes]) -> None:
        queues = self._clients.get(client_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._clients[client_id]

    def send(self, kind: str, data: Any, client_id: str | None = None) -> None:
        """Send to one client, or to all when ``client_id`` is None. Thread-safe."""
        if self.loop is None:
            return
        self._put(json.dumps({"type": kind, "data": data}, default=str), client_id)

    def send_bytes(self, frame: bytes, client_id: str | None = None) -> None:
        """A binary frame (a preview picture) to one client, or to all. Thread-safe."""
        if self.loop is not None:
            self._put(frame, client_id)

    def _put(self, message: str | bytes, client_id: str | None) -> None:
        assert self.loop is not None
        targets = ([q for qs in self._clients.values() for q in qs] if client_id is None
                   else list(self._clients.get(client_id, ())))
        for queue in targets:
            self.loop.call_soon_threadsafe(queue.put_nowait, message)

    def __len__(self) -> int:
        return sum(len(q) for q in self._clients.values())
