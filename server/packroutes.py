"""Serving the aiohttp routes that ComfyUI packs register, on the server's own port.

Packs add handlers to ``PromptServer.instance.routes`` (an aiohttp RouteTableDef). We run
them in a real aiohttp application listening on a private Unix socket, inside the
server's event loop, and forward matching requests to it. Handlers therefore see genuine
aiohttp requests (query, match_info, json(), streaming responses) as under ComfyUI.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

import httpx
from aiohttp import web
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from server.prompt_server import PromptServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class PackRoutes:
    def __init__(self) -> None:
        self.socket_path = os.path.join(tempfile.mkdtemp(prefix="homepilot-packs-"), "routes.sock")
        self.runner: web.AppRunner | None = None
        self.client: httpx.AsyncClient | None = None
        self.routes: list[tuple[str, str]] = []

    def mount(self, app: FastAPI) -> None:
        """Add a forwarding route per pack route (registered at pack import time)."""
        for definition in PromptServer.instance.routes:
            if not isinstance(definition, web.RouteDef):
                continue
            method, path = definition.method.upper(), definition.path
            starlette_path = re.sub(r"\{(\w+):[^}]+\}", r"{\1:path}", path)
            methods = ["GET", "HEAD"] if method == "GET" else [method]
            app.router.routes.append(Route(starlette_path, self.forward, methods=methods,
                                           include_in_schema=False))
            self.routes.append((method, path))

    async def start(self) -> None:
        if not self.routes:
            return
        application = web.Application()
        application.add_routes(PromptServer.instance.routes)
        self.runner = web.AppRunner(application, access_log=None)
        await self.runner.setup()
        await web.UnixSite(self.runner, self.socket_path).start()
        self.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.socket_path),
                                        base_url="http://packs", timeout=None)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.runner is not None:
            await self.runner.cleanup()

    async def forward(self, request: Request) -> Response:
        assert self.client is not None, "pack routes were not started"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP | {"host"}}
        upstream = await self.client.request(
            request.method, request.url.path, params=request.query_params,
            content=await request.body(), headers=headers)
        kept: dict[str, Any] = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)
