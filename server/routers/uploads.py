"""POST /upload: images only, recognised by their bytes, within the size cap."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, UploadFile
from pydantic import BaseModel

from server.deps import State
from server.errors import ApiError

router = APIRouter(tags=["core"])
CHUNK = 1024 * 1024

# Leading bytes -> stored suffix. The client's file name and content type are not trusted.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"),
               (b"GIF87a", ".gif"), (b"GIF89a", ".gif"))


def image_suffix(head: bytes) -> str | None:
    for signature, suffix in _SIGNATURES:
        if head.startswith(signature):
            return suffix
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return None


class Uploaded(BaseModel):
    url: str


async def read_capped(file: UploadFile, max_mb: int) -> bytes:
    """An uploaded file's bytes, refused (413) as soon as they pass ``max_mb``."""
    data = bytearray()
    while chunk := await file.read(CHUNK):
        data += chunk
        if len(data) > max_mb * 1024 * 1024:
            raise ApiError(413, "file_too_large", f"File too large. Max {max_mb}MB.")
    return bytes(data)


@router.post("/upload", response_model=Uploaded, status_code=201)
async def upload(file: UploadFile, request: Request, state: State) -> Uploaded:
    data = await read_capped(file, state.settings.max_upload_mb)
    suffix = image_suffix(data[:16])
    if suffix is None:
        raise ApiError(415, "unsupported_media_type",
                       "only PNG, JPEG, WEBP and GIF images can be uploaded (checked by "
                       "content, not by name)")
    file_id = await asyncio.to_thread(state.files.save, data, suffix)
    base = state.settings.public_base_url or str(request.base_url).rstrip("/")
    return Uploaded(url=f"{base.rstrip('/')}/files/{file_id}")
