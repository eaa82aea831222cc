"""Persona sessions and long-term memory (API-CONTRACT §5).

Sessions and memory rows are plain storage; ending a session runs
graphs/persona_session_end.yaml (summary and memory extraction) through the service.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.deps import State
from server.errors import ApiError
from server.services import persona
from server.services.memory import Candidate
from server.storage import memory as table
from server.storage.sessions import PersonaSessions

router = APIRouter(tags=["personas"])
ProjectId = Field(min_length=1, max_length=200)


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    project_id: str = ProjectId
    mode: Literal["text", "voice"] = "text"
    title: str | None = Field(None, max_length=200)
    force_new: bool = False


class ProjectRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    project_id: str = ProjectId


class PinIn(ProjectRef):
    category: str = Field(min_length=1, max_length=40)
    key: str = Field(min_length=1, max_length=200)
    pinned: bool = True


def _sessions(state: State) -> PersonaSessions:
    return PersonaSessions(state.db)


def _required(body: dict[str, Any], *names: str) -> None:
    for name in names:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ApiError(400, "missing_project_id" if name == "project_id" else
                           "missing_field", f"Missing required field: '{name}'")


@router.get("/persona/sessions")
async def list_sessions(state: State, project_id: str = Query(min_length=1),
                        limit: int = Query(50, ge=1, le=200),
                        include_ended: bool = True) -> dict[str, Any]:
    await asyncio.to_thread(persona.project, state, project_id)
    found = await asyncio.to_thread(_sessions(state).list, project_id, limit, include_ended)
    return {"ok": True, "sessions": [s.model_dump() for s in found]}


@router.post("/persona/sessions", status_code=201)
async def create_session(body: SessionIn, state: State) -> dict[str, Any]:
    """A new session, or the project's newest one when it began under ten minutes ago
    with fewer than three messages (``reused``: true); ``force_new`` always starts one."""
    await asyncio.to_thread(persona.project, state, body.project_id)
    session, reused = await asyncio.to_thread(_sessions(state).create, body.project_id,
                                              body.mode, body.title, body.force_new)
    shown = session.model_dump(exclude={"user_id"} if not reused else set())
    return {"ok": True, "session": shown, "reused": reused}


@router.post("/persona/sessions/resolve")
async def resolve_session(state: State, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """The session to resume: the project's ``active_session_id`` if still open, else the
    newest open one, else the newest one even if ended (returned ended), else a new one."""
    _required(body, "project_id")
    project_id = str(body["project_id"])
    mode = body.get("mode") or "text"
    if mode not in ("text", "voice"):
        raise ApiError(400, "invalid_mode", f"mode must be 'text' or 'voice', not {mode!r}")
    found = await asyncio.to_thread(persona.project, state, project_id)
    sessions = _sessions(state)

    def pick() -> tuple[Any, str]:
        active = found.extra.get("active_session_id")
        chosen = sessions.get(active) if isinstance(active, str) else None
        if chosen is not None and chosen.project_id == project_id and chosen.ended_at is None:
            return chosen, "active"
        for open_only, how in ((True, "newest_open"), (False, "newest")):
            chosen = sessions.newest(project_id, open_only=open_only)
            if chosen is not None:
                return chosen, how
        return sessions.create(project_id, mode, force_new=True)[0], "created"
    session, how = await asyncio.to_thread(pick)
    return {"ok": True, "session": session.model_dump(), "resolved_by": how}


@router.get("/persona/sessions/{session_id}")
async def get_session(session_id: str, state: State) -> dict[str, Any]:
    found = await asyncio.to_thread(_sessions(state).get, session_id)
    if found is None:
        raise ApiError(404, "session_not_found", f"Session '{session_id}' not found")
    return {"ok": True, "session": found.model_dump()}


@router.post("/persona/sessions/{session_id}/end")
async def end_session(session_id: str, state: State) -> dict[str, Any]:
    """End the session, with its summary and the memories extracted from it (stored
    before the answer; ``ended`` false when it was unknown or already ended)."""
    return await persona.end(state, session_id)


@router.get("/persona/memory")
async def list_memory(state: State, project_id: str = Query(min_length=1),
                      category: str | None = Query(None, max_length=40)) -> dict[str, Any]:
    await asyncio.to_thread(persona.project, state, project_id)
    rows = await asyncio.to_thread(table.records, state.db, project_id, category)
    return {"ok": True, "memories": [r.public() for r in rows], "count": len(rows)}


@router.post("/persona/memory")
async def save_memory(state: State, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Upsert on (project_id, category, key); a near-duplicate value in the category
    reinforces the row that holds it (``deduplicated``: true)."""
    _required(body, "project_id", "key", "value")
    try:
        candidate = Candidate.model_validate({k: v for k, v in body.items()
                                              if k in Candidate.model_fields})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ApiError(400, "invalid_field", f"{'.'.join(map(str, first['loc']))}: "
                       f"{first['msg']}") from None
    found = await asyncio.to_thread(persona.project, state, str(body["project_id"]))
    memory = persona.engine(state, found)
    # With memory off nothing is recalled, so nothing needs a vector.
    vector = (await asyncio.to_thread(persona.embed, state, [candidate.value]))[0] \
        if memory.mode != "off" else None
    saved = await asyncio.to_thread(memory.remember, found.id, candidate, vector)
    shown = saved.record.public()
    wire = {k: shown[k] for k in ("id", "project_id", "category", "key", "value",
                                  "confidence", "source_type", "updated_at", "mem_type",
                                  "strength", "importance", "is_pinned")}
    if saved.deduplicated:
        wire["deduplicated"] = True
    return {"ok": True, "memory": wire}


@router.delete("/persona/memory")
async def delete_memory(state: State, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """category + key: that memory; category alone: the category; neither: everything
    (a key without its category is refused, never read as 'forget everything')."""
    _required(body, "project_id")
    if body.get("key") and not body.get("category"):
        _required(body, "category")
    found = await asyncio.to_thread(persona.project, state, str(body["project_id"]))
    memory = persona.engine(state, found)
    if body.get("key"):
        deleted = await asyncio.to_thread(memory.forget, found.id, str(body["category"]),
                                          str(body["key"]))
        return {"ok": True, "deleted": deleted}
    if body.get("category"):
        forgotten = await asyncio.to_thread(memory.forget_category, found.id,
                                            str(body["category"]))
    else:
        forgotten = await asyncio.to_thread(memory.forget_all, found.id)
    return {"ok": True, "forgotten": forgotten, "message": f"Forgot {forgotten} memories"}


@router.post("/persona/memory/pin")
async def pin_memory(body: PinIn, state: State) -> dict[str, Any]:
    """Pin (or unpin) a memory: pinned memories never expire, fade or get evicted."""
    found = await asyncio.to_thread(persona.project, state, body.project_id)
    memory = persona.engine(state, found)
    record = await asyncio.to_thread(memory.pin, found.id, body.category, body.key,
                                     body.pinned)
    if record is None:
        raise ApiError(404, "memory_not_found", f"No memory '{body.key}' in category "
                       f"'{body.category}'")
    return {"ok": True, "memory": record.public()}


@router.post("/persona/memory/maintenance")
async def maintain_memory(body: ProjectRef, state: State) -> dict[str, Any]:
    found = await asyncio.to_thread(persona.project, state, body.project_id)
    memory = persona.engine(state, found)
    report = await asyncio.to_thread(memory.maintain, found.id)
    return {"ok": True, "project_id": found.id, "memory_mode": memory.mode, **report}


@router.get("/persona/memory/stats")
async def memory_stats(state: State,
                       project_id: str = Query(min_length=1)) -> dict[str, Any]:
    found = await asyncio.to_thread(persona.project, state, project_id)
    memory = persona.engine(state, found)
    stats = await asyncio.to_thread(memory.stats, found.id)
    return {"ok": True, "project_id": found.id, **stats}
