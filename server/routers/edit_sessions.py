"""Edit sessions (v1), inside the server (HomePilot proxies to a sidecar): upload a
picture, edit it by instructions, each result a version; select or revert to any."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from PIL import Image
from pydantic import BaseModel, Field, ValidationError

from server.deps import State
from server.errors import ApiError
from server.routers.uploads import image_suffix
from server.services import artwork
from server.services.chat import ChatIn, remember
from server.services.media import file_url, image_size, local_id, own_hosts, resolve_image
from server.state import AppState
from server.storage.edit_sessions import EditState, Version

router = APIRouter(tags=["edit-sessions"])
SessionId = Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")


class MessageIn(BaseModel):
    message: str = Field(min_length=1, max_length=10_000)
    provider: str | None = None
    provider_base_url: str | None = None
    model: str | None = Field(None, max_length=200)
    stream: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)


class MessageOut(BaseModel):
    raw: dict[str, Any]
    state: EditState


class SelectIn(BaseModel):
    image_url: str = Field(min_length=1, max_length=4096)


class ImageOut(EditState):
    result: dict[str, Any] | None = None


def _without_metadata(data: bytes) -> bytes:
    """The picture re-encoded from its pixels only (no EXIF location, no comments)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        fmt = opened.format or "PNG"
        pixels = opened.copy()
    buffer = io.BytesIO()
    pixels.save(buffer, format=fmt if fmt in ("PNG", "JPEG", "WEBP", "GIF") else "PNG")
    return buffer.getvalue()


async def _uploaded(state: AppState, request: Request) -> tuple[str, str | None]:
    """(file id, instruction) from a multipart upload or a JSON ``{image_url}``."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        limit = state.settings.max_upload_mb * 1024 * 1024
        form = await request.form(max_part_size=limit + 1)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "file_required", "send the picture as the multipart field "
                           "'file'")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "file_too_large", f"File too large. Max "
                           f"{state.settings.max_upload_mb}MB.")
        await asyncio.to_thread(image_size, data, "the upload")
        if str(form.get("strip_metadata", "true")).lower() not in ("false", "0", "no"):
            data = await asyncio.to_thread(_without_metadata, data)
        file_id = await asyncio.to_thread(state.files.save, data,
                                          image_suffix(data[:16]) or ".png")
        instruction = form.get("instruction")
        return file_id, instruction if isinstance(instruction, str) and instruction else None
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_body", "send multipart 'file' or JSON {\"image_url\"}") \
            from None
    if not isinstance(body, dict) or not isinstance(body.get("image_url"), str):
        raise ApiError(400, "image_required", "image_url is required")
    file_id = await resolve_image(state, body["image_url"], request.url.hostname)
    instruction = body.get("instruction")
    return file_id, instruction if isinstance(instruction, str) and instruction else None


async def _edit(state: AppState, session_id: str, body: MessageIn,
                host: str | None) -> tuple[dict[str, Any], EditState]:
    current = state.edit_sessions.get(session_id)
    if not current.active_image_url:
        raise ApiError(400, "no_active_image", "No active image. Upload an image first.")
    try:
        fields = {**body.extra, "message": f"edit {current.active_image_url} {body.message}",
                  "mode": "edit", "conversation_id": session_id}
        if body.model:  # the sidecar's `model` is the image model; extra may name it too
            fields["imgModel"] = body.model
        chat = ChatIn.model_validate(fields)
    except ValidationError as exc:
        raise ApiError(400, "invalid_extra", f"extra settings are not valid: {exc}") from None
    text, media = await artwork.edit(state, chat, host)
    await asyncio.to_thread(remember, state, chat, session_id, text, media)
    new_state = current
    for url in media["images"]:
        new_state = await asyncio.to_thread(state.edit_sessions.add, session_id, Version(
            url=url, instruction=body.message, created_at=time.time(),
            parent_url=current.active_image_url, settings=media["edit_settings"]))
    raw = {"conversation_id": session_id, "text": text, "media": media}
    return raw, new_state


@router.get("/v1/edit-sessions/{session_id}", response_model=EditState)
def get_session(state: State, session_id: str = SessionId) -> EditState:
    return state.edit_sessions.get(session_id)


@router.delete("/v1/edit-sessions/{session_id}")
def delete_session(state: State, session_id: str = SessionId) -> dict[str, bool]:
    state.edit_sessions.delete(session_id)
    return {"ok": True}


@router.post("/v1/edit-sessions/{session_id}/image", response_model=ImageOut,
             response_model_exclude_none=True)
async def set_image(request: Request, state: State, session_id: str = SessionId) -> ImageOut:
    file_id, instruction = await _uploaded(state, request)
    started = await asyncio.to_thread(state.edit_sessions.start, session_id, file_url(file_id))
    if instruction is None:
        return ImageOut(**started.model_dump())
    raw, latest = await _edit(state, session_id, MessageIn(message=instruction),
                              request.url.hostname)
    return ImageOut(**latest.model_dump(), result=raw)


@router.post("/v1/edit-sessions/{session_id}/message", response_model=MessageOut)
async def message(body: MessageIn, request: Request, state: State,
                  session_id: str = SessionId) -> MessageOut:
    raw, latest = await _edit(state, session_id, body, request.url.hostname)
    return MessageOut(raw=raw, state=latest)


@router.post("/v1/edit-sessions/{session_id}/select", response_model=EditState)
async def select(body: SelectIn, request: Request, state: State,
                 session_id: str = SessionId) -> EditState:
    current = state.edit_sessions.get(session_id)
    if not current.versions:
        raise ApiError(400, "no_session", "No image in this session. Upload an image first.")
    url = body.image_url.strip()
    if not any(v.url == url for v in current.versions):
        # Only pictures of this server may become the base: never a fetch from here.
        local = local_id(state, url, own_hosts(state, request.url.hostname))
        if local is None:
            raise ApiError(400, "invalid_image_url", "Invalid image_url: select one of the "
                           "session's versions or a /files/ picture of this server")
        url = file_url(await resolve_image(state, local, request.url.hostname))
    return await asyncio.to_thread(state.edit_sessions.activate, session_id, url, True)


@router.post("/v1/edit-sessions/{session_id}/revert", response_model=EditState)
async def revert(state: State, session_id: str = SessionId,
                 index: int = Query(0)) -> EditState:
    current = state.edit_sessions.get(session_id)
    if not current.versions:
        raise ApiError(400, "no_history", "No history available")
    if not 0 <= index < len(current.versions):
        raise ApiError(400, "invalid_index", "Invalid history index. Valid range: "
                       f"0-{len(current.versions) - 1}")
    return await asyncio.to_thread(state.edit_sessions.activate, session_id,
                                   current.versions[index].url, False)
