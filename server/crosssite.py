"""Cross-site request protection: a web page the user visits must not drive this server
through the browser.

A page on another site can POST to http://127.0.0.1:8000 with ``fetch(..., {mode:
"no-cors"})`` or a form: the browser sends it without asking (a "simple" request: text
or form content, no custom headers) and only hides the answer. So, for every
state-changing request (and every WebSocket handshake):

- an ``Origin`` that is neither this server's own (the ``Host`` it was reached at) nor one
  of the configured CORS origins gets 403 — the check ComfyUI makes; ``Origin: null``
  (sandboxed frames, file pages) and ``Sec-Fetch-Site: cross-site`` without an Origin too;
- a body must be JSON (or multipart, for uploads): ``text/plain`` and form encodings,
  which browsers send cross-site without a preflight, get 415 — unless the browser says
  the request comes from this server's own page (the editor sends text/plain bodies).
  ComfyUI's own API routes also take the form encoding that Python's urllib puts on its
  example script's JSON, but only from clients that are not browsers (no Origin, no
  Sec-Fetch headers).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
JSON_TYPES = ("application/json",)
UPLOAD_TYPES = ("multipart/form-data",)
# What urllib (ComfyUI's websockets_api_example.py) sends with a JSON body by default.
SCRIPT_TYPES = ("application/x-www-form-urlencoded", "")
COMFY_PATHS = {f"{base}{p}" for base in ("", "/api")
               for p in ("/prompt", "/interrupt", "/queue", "/history", "/free")}


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.scheme, parts.hostname.lower(), port


class CrossSiteGuard:
    """Pure ASGI middleware over HTTP and WebSocket scopes."""

    def __init__(self, app: Any, allowed_origins: list[str]) -> None:
        self.app = app
        self.any_origin = "*" in allowed_origins
        self.allowed = {key for o in allowed_origins if (key := _origin_key(o))}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
                kind == "http" and scope["method"] in SAFE_METHODS):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        refusal = self._cross_site(scope, headers)
        if refusal is None and kind == "http" and not self._same_origin(scope, headers):
            refusal = self._content_type(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 4403})
            return
        body = json.dumps({"ok": False, "code": code, "message": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    def _cross_site(self, scope: dict[str, Any],
                    headers: dict[str, str]) -> tuple[int, str, str] | None:
        origin = headers.get("origin")
        if origin is None:
            if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
                return 403, "cross_site_request", "requests from other sites are refused"
            return None  # not a browser (curl, scripts), or an old same-origin form
        if self.any_origin:
            return None
        key = _origin_key(origin)
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        own = _origin_key(f"{scheme}://{headers.get('host', '')}")
        if key is not None and (key == own or key in self.allowed):
            return None
        return 403, "cross_site_request", (
            f"requests from {origin[:100]} are refused: only this server's own pages and the "
            "origins in HOMEPILOT_CORS_ORIGINS may change things here")

    @staticmethod
    def _same_origin(scope: dict[str, Any], headers: dict[str, str]) -> bool:
        """A browser request from this server's own page (the editor posts settings and
        workflows as text/plain): the browser vouches for it, pages cannot forge these."""
        if headers.get("sec-fetch-site") == "same-origin":
            return True
        origin = headers.get("origin")
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        return origin is not None and _origin_key(origin) is not None and \
            _origin_key(origin) == _origin_key(f"{scheme}://{headers.get('host', '')}")

    def _content_type(self, scope: dict[str, Any],
                      headers: dict[str, str]) -> tuple[int, str, str] | None:
        if not _has_body(headers):
            return None
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in JSON_TYPES or content_type.endswith("+json") or \
                content_type in UPLOAD_TYPES:
            return None
        browser = "origin" in headers or any(h.startswith("sec-fetch-") for h in headers)
        if scope["path"] in COMFY_PATHS and content_type in SCRIPT_TYPES and not browser:
            return None
        return 415, "unsupported_media_type", (
            f"send the body as application/json (got {content_type or 'no content type'!r})")


def _has_body(headers: dict[str, str]) -> bool:
    if "transfer-encoding" in headers:
        return True
    try:
        return int(headers.get("content-length", "0") or 0) > 0
    except ValueError:
        return True
