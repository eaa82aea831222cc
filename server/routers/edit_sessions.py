"""Edit sessions (v1), inside the server (HomePilot proxies to a sidecar): upload a
picture, edit it by instructions, each result a version; select or revert to any."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from PIL import Image, ImageOps
from pydantic import BaseModel, Field, ValidationError

from server.deps import State
from server.errors import ApiError
from server.routers.uploads import image_suffix
from server.services import artwork
from server.services.chat import ChatIn, ignored, remember
from server.services.media import (
    FORMATS,
    Source,
    as_png,
    file_url,
    image_size,
    load_source,
    local_id,
    own_hosts,
    resolve_image,
)
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


# POST .../image reads its body by hand (an upload or JSON): the OpenAPI says which.
_INSTRUCTION = {"type": "string", "description": "an edit to run at once"}
IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "instruction": _INSTRUCTION,
        "strip_metadata": {"type": "string", "default": "true",
                           "description": "false, 0 or no keep EXIF and comments"}}}},
    "application/json": {"schema": {"type": "object", "required": ["image_url"], "properties": {
        "image_url": {"type": "string"}, "instruction": _INSTRUCTION}}}}}}


class ImageOut(EditState):
    result: dict[str, Any] | None = None


def _cleaned(data: bytes, strip: bool) -> bytes:
    """The upload as stored: PNG/JPEG/WEBP/GIF bytes (other formats become PNG). ``strip``
    re-encodes it from its pixels (no EXIF location, no comments), turned upright first
    as its EXIF orientation says, its colour profile kept."""
    if not strip:
        return data if image_suffix(data[:16]) else as_png(data)
    with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
        opened.load()
        fmt = opened.format if opened.format in ("PNG", "JPEG", "WEBP", "GIF") else "PNG"
        icc = opened.info.get("icc_profile")
        upright = ImageOps.exif_transpose(opened)
    if fmt == "PNG" and upright.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        upright = upright.convert("RGBA" if "A" in upright.mode else "RGB")
    if fmt == "JPEG" and upright.mode not in ("L", "RGB", "CMYK"):
        upright = upright.convert("RGB")
    options: dict[str, Any] = {"icc_profile": icc} if icc else {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 95
    buffer = io.BytesIO()
    upright.save(buffer, format=fmt, **options)
    return buffer.getvalue()


async def _uploaded(state: AppState, request: Request) -> tuple[Source, str | None]:
    """(the checked picture, not stored yet; instruction) from a multipart upload or a
    JSON ``{image_url}``."""
    limit = state.settings.max_upload_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise ApiError(413, "file_too_large", f"File too large. Max "
                       f"{state.settings.max_upload_mb}MB.")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "file_required", "send the picture as the multipart field "
                           "'file'")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "file_too_large", f"File too large. Max "
                           f"{state.settings.max_upload_mb}MB.")
        size = await asyncio.to_thread(image_size, data, "the upload")
        strip = str(form.get("strip_metadata", "true")).lower() not in ("false", "0", "no")
        data = await asyncio.to_thread(_cleaned, data, strip)
        instruction = form.get("instruction")
        source = Source(size=size, data=data, suffix=image_suffix(data[:16]) or ".png")
        return source, instruction if isinstance(instruction, str) and instruction else None
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
        raise ApiError(400, "invalid_body", "send multipart 'file' or JSON {\"image_url\"}") \
            from None
    if not isinstance(body, dict) or not isinstance(body.get("image_url"), str):
        raise ApiError(400, "image_required", "image_url is required")
    source = await load_source(state, body["image_url"], request.url.hostname)
    instruction = body.get("instruction")
    return source, instruction if isinstance(instruction, str) and instruction else None


def _chat_request(session_id: str, source_url: str | None, body: MessageIn) -> ChatIn:
    """The /chat edit request a session message stands for (the sidecar's mapping)."""
    text = f"edit {source_url} {body.message}" if source_url else body.message
    fields = {**body.extra, "message": text, "mode": "edit", "conversation_id": session_id}
    if body.model:  # the sidecar's `model` is the image model; extra may name it too
        fields["imgModel"] = body.model
    try:
        return ChatIn.model_validate(fields)
    except ValidationError as exc:
        raise ApiError(400, "invalid_extra", f"extra settings are not valid: {exc}") from None


async def _record(state: AppState, session_id: str, chat: ChatIn, body: MessageIn,
                  text: str, media: dict[str, Any], parent: str) -> dict[str, Any]:
    """Store the edit's turn and its pictures as versions; the /chat response it made."""
    await asyncio.to_thread(remember, state, chat, session_id, text, media)
    for url in media["images"]:
        await asyncio.to_thread(state.edit_sessions.add, session_id, Version(
            url=url, instruction=body.message, created_at=time.time(), parent_url=parent,
            settings=media["edit_settings"]))
    return {"conversation_id": session_id, "text": text, "media": media}


async def _edit(state: AppState, session_id: str, body: MessageIn,
                host: str | None) -> tuple[dict[str, Any], EditState]:
    current = await asyncio.to_thread(state.edit_sessions.get, session_id)
    if not current.active_image_url:
        raise ApiError(400, "no_active_image", "No active image. Upload an image first.")
    chat = _chat_request(session_id, current.active_image_url, body)
    text, media = await artwork.edit(state, chat, host)
    if skipped := ignored(body, "edit") + ignored(chat, "edit"):
        media["ignored"] = skipped
    raw = await _record(state, session_id, chat, body, text, media, current.active_image_url)
    return raw, await asyncio.to_thread(state.edit_sessions.get, session_id)


@router.get("/v1/edit-sessions/{session_id}", response_model=EditState)
def get_session(state: State, session_id: str = SessionId) -> EditState:
    return state.edit_sessions.get(session_id)


@router.delete("/v1/edit-sessions/{session_id}")
def delete_session(state: State, session_id: str = SessionId) -> dict[str, bool]:
    state.edit_sessions.delete(session_id)
    return {"ok": True}


@router.post("/v1/edit-sessions/{session_id}/image", response_model=ImageOut,
             response_model_exclude_unset=True, openapi_extra=IMAGE_BODY)
async def set_image(request: Request, state: State, session_id: str = SessionId) -> ImageOut:
    source, instruction = await _uploaded(state, request)
    if instruction is None:
        file_id = await source.keep(state)
        started = await asyncio.to_thread(state.edit_sessions.start, session_id,
                                          file_url(file_id))
        return ImageOut(**started.model_dump())
    try:
        body = MessageIn(message=instruction)
    except ValidationError as exc:
        raise ApiError(400, "invalid_instruction", f"instruction: {exc.errors()[0]['msg']}") \
            from None
    # The edit runs (and is checked) first: a refused one leaves the old session as it was.
    chat = _chat_request(session_id, None, body)
    text, media = await artwork.edit(state, chat, request.url.hostname, source=source)
    original = media["source_image"]
    await asyncio.to_thread(state.edit_sessions.start, session_id, original)
    raw = await _record(state, session_id, chat, body, text, media, original)
    latest = await asyncio.to_thread(state.edit_sessions.get, session_id)
    return ImageOut(**latest.model_dump(), result=raw)


@router.post("/v1/edit-sessions/{session_id}/message", response_model=MessageOut)
async def message(body: MessageIn, request: Request, state: State,
                  session_id: str = SessionId) -> MessageOut:
    raw, latest = await _edit(state, session_id, body, request.url.hostname)
    return MessageOut(raw=raw, state=latest)


@router.post("/v1/edit-sessions/{session_id}/select", response_model=EditState)
async def select(body: SelectIn, request: Request, state: State,
                 session_id: str = SessionId) -> EditState:
    current = await asyncio.to_thread(state.edit_sessions.get, session_id)
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
    current = await asyncio.to_thread(state.edit_sessions.get, session_id)
    if not current.versions:
        raise ApiError(400, "no_history", "No history available")
    if not 0 <= index < len(current.versions):
        raise ApiError(400, "invalid_index", "Invalid history index. Valid range: "
                       f"0-{len(current.versions) - 1}")
    return await asyncio.to_thread(state.edit_sessions.activate, session_id,
                                   current.versions[index].url, False)


@router.delete("/v1/edit-sessions/{session_id}/version")
async def delete_version(state: State, session_id: str = SessionId,
                         image_url: str = Query(..., min_length=1, max_length=4096)
                         ) -> dict[str, Any]:
    current = await asyncio.to_thread(state.edit_sessions.get, session_id)
    if not any(v.url == image_url for v in current.versions):
        raise ApiError(404, "version_not_found", "no version of this session has that "
                       "image_url")
    latest = await asyncio.to_thread(state.edit_sessions.remove_version, session_id,
                                     image_url)
    return {"ok": True, **latest.model_dump()}
