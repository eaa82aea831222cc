"""``PromptServer.instance`` for ComfyUI packs: their aiohttp routes and ``send_sync``.

Packs register handlers on ``PromptServer.instance.routes`` at import time; ``homepilot
serve`` serves them on its own port (see ``server/packroutes.py``). Messages a pack sends
with ``send_sync`` go to the ComfyUI WebSocket clients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

Sink = Callable[[str, Any, str | None], None]


class PromptServer:
    instance: PromptServer

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.sink: Sink | None = None
        self.supports = ["custom_nodes_from_web"]

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        if self.sink is not None:
            self.sink(event, data, sid)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)


PromptServer.instance = PromptServer()
