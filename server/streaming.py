"""A streamed answer that is a run's output: when the client goes away, the run stops.

Starlette ends a StreamingResponse when the client disconnects, but the run feeding it
would go on holding its model host (a chat reply of thousands of tokens nobody reads).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import StreamingResponse

from engine.run import RunHandle

# A route that streams server-sent events declares these. Its response_class stays a
# StreamingResponse, whose media type is unset: with one set FastAPI would document its
# error answers (JSON) as event streams too. Before OpenAPI 3.2 a text/event-stream schema
# describes each event; its ``data`` is a JSON document (OpenAI's last one is [DONE]).
SSE_EVENT: dict[str, Any] = {"schema": {
    "type": "object", "required": ["data"], "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"}}}}
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "server-sent events", "content": {"text/event-stream": SSE_EVENT}}}


class RunStream(StreamingResponse):
    """Server-sent events from ``handle``'s run; the run is cancelled if the response
    ends before it does (the client disconnected, or sending failed)."""

    def __init__(self, content: Any, handle: RunHandle, **kwargs: Any) -> None:
        kwargs.setdefault("media_type", "text/event-stream")
        super().__init__(content, **kwargs)
        self.headers.setdefault("cache-control", "no-cache")
        self.handle = handle

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self.handle.done():
                self.handle.cancel()
