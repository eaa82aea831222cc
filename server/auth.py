"""API-key protection: with HOMEPILOT_API_KEY set, everything but /health needs the key.

Accepted as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; WebSocket clients,
which cannot set headers, may send an ``api_key`` query parameter (on HTTP routes it is
refused: a key in a URL ends up in logs and browser history). Every method needs the key,
OPTIONS included: CORS preflights are answered by the CORS middleware before this one.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import parse_qs

OPEN_PATHS = {"/health"}


class ApiKeyGuard:
    """Pure ASGI middleware: covers HTTP and WebSocket routes alike."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS \
                or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        body = json.dumps({"ok": False, "code": "unauthorized",
                           "message": "this server needs its API key: send 'Authorization: "
                                      "Bearer <key>' or 'X-API-Key: <key>'"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: dict[str, Any]) -> bool:
        headers = dict(scope.get("headers") or [])
        offered = [headers.get(b"x-api-key", b"")]
        authorization = headers.get(b"authorization", b"")
        if authorization[:7].lower() == b"bearer ":
            offered.append(authorization[7:].strip())
        if scope["type"] == "websocket":
            query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
            offered += [v.encode() for v in query.get("api_key", [])]
        return any(hmac.compare_digest(candidate, self.key) for candidate in offered
                   if candidate)
