"""POST /chat and its streaming variant POST /chat/stream."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from engine.errors import NodeError
from server.deps import State
from server.errors import ApiError
from server.services import artwork, chat
from server.services.runs import stream, until_done
from server.state import AppState
from server.streaming import SSE_RESPONSES, RunStream

router = APIRouter(tags=["core"])
log = logging.getLogger("homepilot.chat")


def _failure(error: NodeError | None, provider: str | None) -> ApiError:
    """A failed chat run as an HTTP error: the model (local or remote) is upstream: 502."""
    if error is None:
        return ApiError(503, "cancelled", "the reply was cancelled (is the server stopping?)")
    if error.error_type == "ModelNotFoundError":
        return ApiError(404, "model_not_found", error.message)
    if error.error_type == "PromptTooLong":
        return ApiError(400, "prompt_too_long", error.message)
    return ApiError(502, "llm_error", f"LLM error ({provider or 'local'}): {error.message}")


def _check_mode(state: AppState, body: chat.ChatIn) -> None:
    mode = chat.route(body)
    if mode != "chat":
        raise ApiError(400, "not_streamable", f"{chat.MEDIA_MODES[mode]} is not streamed as "
                       "text: send it to POST /chat")


@router.post("/chat", response_model=chat.ChatOut)
async def post_chat(body: chat.ChatIn, request: Request, state: State) -> chat.ChatOut:
    mode = chat.route(body)
    if mode != "chat":
        chat.require_media_graph(state, mode)
        conversation_id = body.conversation_id or str(uuid.uuid4())
        text, media = await artwork.MODES[mode](state, body, request.url.hostname)
        if skipped := chat.ignored(body, mode):
            media["ignored"] = skipped
            log.info("%s request: not applied: %s", mode,
                     "; ".join(f"{s['field']} ({s['reason']})" for s in skipped))
        await asyncio.to_thread(chat.remember, state, body, conversation_id, text, media)
        return chat.ChatOut(conversation_id=conversation_id, text=text, media=media)
    conversation_id, graph, inputs = await asyncio.to_thread(chat.plan, state, body)
    record = await asyncio.to_thread(state.runs.start, graph, inputs)
    await until_done(record.handle, 3600)
    result = record.handle.result(0)
    if result.status != "success":
        raise _failure(result.error, body.provider)
    text = result.outputs["text"] or "…"
    await asyncio.to_thread(chat.remember, state, body, conversation_id, text)
    return chat.ChatOut(conversation_id=conversation_id, text=text, media=None)


@router.post("/chat/stream", response_class=StreamingResponse, responses=SSE_RESPONSES)
async def post_chat_stream(body: chat.ChatIn, state: State) -> RunStream:
    """Server-sent events: ``{"delta": text}`` frames, then ``{"done": true,
    "conversation_id", "text"}`` (or ``{"error": {...}}``)."""
    _check_mode(state, body)
    conversation_id, graph, inputs = await asyncio.to_thread(chat.plan, state, body)
    record = await asyncio.to_thread(state.runs.start, graph, inputs)

    async def frames() -> AsyncIterator[str]:
        streamed = False
        async for event in stream(record.handle):
            if event.type == "node_progress" and event.data.get("text"):
                streamed = True
                yield f"data: {json.dumps({'delta': event.data['text']})}\n\n"
            elif event.type == "run_finished":
                finished = await asyncio.to_thread(record.handle.result, 5)
                text = finished.outputs["text"] or "…"
                if not streamed:
                    yield f"data: {json.dumps({'delta': text})}\n\n"
                await asyncio.to_thread(chat.remember, state, body, conversation_id, text)
                done = {"done": True, "conversation_id": conversation_id, "text": text}
                yield f"data: {json.dumps(done)}\n\n"
            elif event.type in ("run_failed", "run_cancelled"):
                ended = await asyncio.to_thread(record.handle.result, 5)
                error = _failure(ended.error, body.provider)
                frame = {"error": {"code": error.code, "message": error.message}}
                yield f"data: {json.dumps(frame)}\n\n"
    return RunStream(frames(), record.handle)
