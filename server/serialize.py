"""JSON in and out: bodies routes read by hand, and run outputs as JSON (images become
stored files, the rest plain values)."""

from __future__ import annotations

import io
import json
import math
from typing import Any

from starlette.requests import Request

from engine.files import FileStore


async def read_json(request: Request) -> Any:
    """A body the route reads by hand as JSON; None when empty. Bad JSON is a 400."""
    from server.errors import ApiError

    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body is nested too deeply") from None
    except ValueError as exc:  # also not UTF-8, and integers past Python's 4300 digits
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from exc


def jsonable(value: Any, files: FileStore) -> Any:
    """A JSON-ready form of a node value; media is written to the file store once."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, files) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, files) for v in value]
    if _is_image(value):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        file_id = files.save(buffer.getvalue(), ".png")
        return {"type": "image", "file_id": file_id, "url": f"/files/{file_id}",
                "width": value.size[0], "height": value.size[1], "mode": value.mode}
    if isinstance(value, (bytes, bytearray)):
        file_id = files.save(bytes(value), ".bin")
        return {"type": "bytes", "file_id": file_id, "url": f"/files/{file_id}",
                "size": len(value)}
    return repr(value)


def _is_image(value: Any) -> bool:
    return hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "save")
