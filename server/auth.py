"""API-key protection: with HOMEPILOT_API_KEY set, everything but /health needs the key.

Accepted as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; WebSocket clients,
which cannot set headers, may send an ``api_key`` query parameter (on HTTP routes it is
refused: a key in a URL ends up in logs and browser history). Every method needs the key,
OPTIONS included: CORS preflights are answered by the CORS middleware before this one.

A browser cannot add headers to page loads, module imports or its WebSocket, so the
editor's login page (``/editor/login``) trades the key, once, for a session cookie:
HttpOnly, SameSite=Strict, signed with the key (changing the key ends every session).
The editor's page without a session is sent to the login page rather than answered 401:
a 401 on the editor's settings makes it reload forever.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, quote

OPEN_PATHS = {"/health", "/editor/login"}
SESSION_COOKIE = "homepilot_session"
SESSION_SECONDS = 30 * 24 * 3600
EDITOR_PAGES = {"/editor", "/editor/"}


def _signature(key: bytes, payload: str) -> str:
    return hmac.new(key, b"editor-session:" + payload.encode(), hashlib.sha256).hexdigest()


def new_session(key: str) -> str:
    """A session cookie value: expiry, a nonce, and their signature under the key."""
    payload = f"{int(time.time()) + SESSION_SECONDS}.{secrets.token_hex(16)}"
    return f"{payload}.{_signature(key.encode(), payload)}"


def valid_session(key: bytes, value: str) -> bool:
    expires, _, rest = value.partition(".")
    nonce, _, signature = rest.partition(".")
    if not expires.isdigit() or not nonce or not signature:
        return False
    if int(expires) < time.time():
        return False
    return hmac.compare_digest(_signature(key, f"{expires}.{nonce}"), signature)


def session_of(headers: dict[bytes, bytes]) -> str | None:
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE:
            return value
    return None


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
        if scope["path"] in EDITOR_PAGES and scope.get("method") in ("GET", "HEAD"):
            query = scope.get("query_string", b"").decode("latin-1")
            target = "/editor/" + (f"?{query}" if query else "")
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", f"/editor/login?next={quote(target, safe='')}".encode())]})
            await send({"type": "http.response.body", "body": b""})
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
        session = session_of(headers)
        if session is not None and valid_session(self.key, session):
            return True
        if scope["type"] == "websocket":
            query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
            offered += [v.encode() for v in query.get("api_key", [])]
        return any(hmac.compare_digest(candidate, self.key) for candidate in offered
                   if candidate)
