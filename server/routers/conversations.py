"""Conversations: list, messages, delete (with their media files), full-text search."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from server.deps import State
from server.state import AppState

router = APIRouter(tags=["conversations"])
ConversationId = Annotated[str, "conversation id"]


@router.get("/conversations")
async def list_conversations(state: State, limit: int = Query(50, ge=1, le=200),
                             project_id: str | None = None) -> dict[str, Any]:
    found = await asyncio.to_thread(state.conversations.summaries, limit, project_id)
    return {"ok": True, "conversations": [c.model_dump() for c in found]}


@router.get("/conversations/{conversation_id}/messages")
async def conversation_messages(conversation_id: str, state: State,
                                limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    found = await asyncio.to_thread(state.conversations.messages, conversation_id, limit)
    return {"ok": True, "conversation_id": conversation_id,
            "messages": [m.model_dump() for m in found]}


@router.delete("/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, state: State) -> dict[str, Any]:
    deleted, removed = await asyncio.to_thread(_delete, state, conversation_id)
    return {"ok": True, "deleted": deleted > 0, "deleted_messages": deleted,
            "deleted_media_files": removed, "conversation_id": conversation_id}


def _delete(state: AppState, conversation_id: str) -> tuple[int, int]:
    """Remove the conversation, its edit session and the media only it still shows."""
    files = state.conversations.media_files(conversation_id)
    deleted = state.conversations.delete(conversation_id)
    # An edit session is keyed by its conversation: its versions are the files just listed.
    state.edit_sessions.delete(conversation_id)
    # Another conversation (a cached run hands out the same file) or edit session may
    # still show a file: those stay.
    return deleted, state.references.remove_unused(state.files, files)


@router.get("/conversations/{conversation_id}/search")
async def search_conversation(conversation_id: str, state: State,
                              q: str = Query(min_length=1, max_length=500),
                              limit: int = Query(20, ge=1, le=100)) -> dict[str, Any]:
    hits = await asyncio.to_thread(state.conversations.search, conversation_id, q, limit)
    return {"ok": True, "conversation_id": conversation_id, "query": q,
            "results": [h.model_dump() for h in hits], "count": len(hits)}
