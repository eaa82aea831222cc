"""GET /files/{file_id}: stored artifacts with their content type."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter
from fastapi.responses import FileResponse

from engine.errors import EngineError
from server.deps import State
from server.errors import ApiError

router = APIRouter(tags=["files"])


@router.get("/files/{file_id}")
def get_file(file_id: str, state: State) -> FileResponse:
    try:
        path = state.files.path(file_id)
    except EngineError as exc:
        raise ApiError(404, "file_not_found", str(exc)) from exc
    if not path.is_file():
        raise ApiError(404, "file_not_found", f"file {file_id} does not exist")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type)
