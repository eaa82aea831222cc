"""Request bodies stop at the cap while they stream in.

Starlette parses a multipart body in full (spooling it to a temporary file) before the
route sees it, so a check in the route comes after the whole upload is on disk. This
middleware refuses a declared ``Content-Length`` over the cap before reading anything,
and counts the bytes of bodies that do not declare one: past the cap the app is told the
client went away, its answer is dropped, and the client gets 413.
"""

from __future__ import annotations

import json
from typing import Any


class BodyLimit:
    """Pure ASGI middleware for HTTP requests."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received, exceeded, started = 0, False, False

        async def counted() -> dict[str, Any]:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True  # stop reading: to the app the client has gone
                    return {"type": "http.disconnect"}
            return message

        async def answer(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app makes of the cut body; ours goes out below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        mb = self.max_bytes / 1024**2
        body = json.dumps({"ok": False, "code": "file_too_large",
                           "message": f"the request body is larger than {mb:.0f} MB "
                                      "(HOMEPILOT_MAX_UPLOAD_MB)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
