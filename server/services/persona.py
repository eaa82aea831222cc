"""Persona projects at work: their memory engine, the end of a session (summary and
memories through graphs/persona_session_end.yaml), and what a persona chat turn is told
(the persona's prompt, the memories relevant to the message, the last session)."""

from __future__ import annotations

import asyncio
from typing import Any

from server.errors import ApiError
from server.services import personalities, recollection
from server.services.graphs import load_named
from server.services.memory import Candidate, MemoryEngine, Mode
from server.services.runs import finish
from server.state import AppState
from server.storage import memory as table
from server.storage.memory import Record
from server.storage.projects import Project
from server.storage.sessions import PersonaSessions, Session

PREFIX = "persona:"
MODES = ("basic", "adaptive", "off")
# The reference's chat field memoryEngine says v1/v2 for basic/adaptive.
ALIASES = {"v1": "basic", "v2": "adaptive"}
# The session-end graph reads the user's side of the newest messages.
TRANSCRIPT_MESSAGES = 40
RECALL_LIMIT = 6


def project(state: AppState, project_id: str) -> Project:
    found = state.projects.get(project_id)
    if found is None:
        raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    return found


def memory_mode(found: Project) -> Mode:
    """The persona's ``persona_agent.memory_mode`` (adaptive when unset)."""
    agent = found.extra.get("persona_agent") or {}
    mode = agent.get("memory_mode") if isinstance(agent, dict) else None
    mode = ALIASES.get(str(mode), mode) or "adaptive"
    return mode if mode in MODES else "adaptive"  # type: ignore[return-value]


def engine(state: AppState, found: Project) -> MemoryEngine:
    return MemoryEngine(state.db, memory_mode(found))


def embed(state: AppState, texts: list[str]) -> list[list[float]]:
    """Vectors for ``texts`` from a run of graphs/embed.yaml (on the MiniLM model host)."""
    if not texts:
        return []
    record = state.runs.start(load_named(state.graphs_dir, "embed"), {"texts": texts})
    result = record.handle.result(120)
    if result.status != "success":
        message = result.error.message if result.error else result.status
        raise ApiError(502, "embedding_failed", f"the memories could not be embedded: "
                       f"{message}")
    return [[float(x) for x in vector] for vector in result.outputs["vectors"]]


# -- ending a session ------------------------------------------------------------------


def _said(state: AppState, session: Session) -> list[str]:
    """What the user said in the session (the newest messages), as statements."""
    said = state.conversations.recent(session.conversation_id, TRANSCRIPT_MESSAGES)
    return recollection.statements([m.content for m in said if m.role == "user"])


async def end(state: AppState, session_id: str) -> dict[str, Any]:
    """End a session: summarise it, extract its memories, and store both with the end in
    one transaction. A failed run changes nothing (the session stays open)."""
    sessions = PersonaSessions(state.db)
    session = await asyncio.to_thread(sessions.get, session_id)
    if session is None or session.ended_at is not None:
        return {"ok": True, "ended": False, "session_id": session_id}
    found = await asyncio.to_thread(state.projects.get, session.project_id)
    memory = MemoryEngine(state.db, memory_mode(found) if found else "off")
    summary: str | None = None
    chosen: list[Candidate] = []
    shown = await asyncio.to_thread(_said, state, session)
    if shown:
        outputs = await finish(state.runs, load_named(state.graphs_dir, "persona_session_end"),
                               {"statements": recollection.numbered(shown),
                                "schema": recollection.schema(len(shown))},
                               "Ending the session")
        summary = " ".join(str(outputs["summary"]).split()) or None
        if memory.mode != "off":
            chosen = [Candidate(category=k.category, key=k.key, value=k.value,
                                importance=k.importance, confidence=0.7,
                                source_type="session_extraction", source_session=session_id)
                      for k in recollection.kept(outputs["memories"], shown)]
    vectors = await asyncio.to_thread(embed, state, [c.value for c in chosen])

    def store() -> tuple[bool, list[Record]]:
        with state.db.write() as cursor:
            if not sessions.end_in(cursor, session_id, summary):
                return False, []
            saved = [memory.remember_in(cursor, session.project_id, c, v).record
                     for c, v in zip(chosen, vectors, strict=True)]
            return True, list({r.id: r for r in saved}.values())
    ended, saved = await asyncio.to_thread(store)
    return {"ok": True, "ended": ended, "session_id": session_id,
            "summary": summary if ended else None,
            "memories": [r.public() for r in saved]}


# -- a persona chat turn ---------------------------------------------------------------


def persona_id(body: Any) -> str | None:
    """The project of ``personalityId: "persona:<project_id>"``, else None."""
    chosen = getattr(body, "personalityId", None) or ""
    if not chosen.startswith(PREFIX):
        return None
    return chosen[len(PREFIX):] or None


def persona_prompt(found: Project) -> str:
    """Who the persona is: its own system prompt, else its built-in personality's, else
    its name and role."""
    agent = found.extra.get("persona_agent") or {}
    label = agent.get("label") or found.name
    role = agent.get("role") or found.description
    own = agent.get("system_prompt")
    if not own and agent.get("personality_id") in personalities.personalities():
        own = personalities.personalities()[agent["personality_id"]].system_prompt
    intro = f"You are {label}" + (f", {role}" if role else "") + "."
    tone = (agent.get("response_style") or {}).get("tone") \
        if isinstance(agent.get("response_style"), dict) else None
    parts = [intro, own or "", f"Your tone: {tone}." if tone else ""]
    return "\n\n".join(p for p in parts if p)


def _remembered(memories: list[Record]) -> str:
    lines = [f"- {m.value}" + (f" ({m.category})" if m.category != "fact" else "")
             for m in memories]
    return ("What you remember about the user from earlier conversations (use it "
            "naturally; do not list it back):\n" + "\n".join(lines))


def _last_session(sessions: PersonaSessions, project_id: str, current: str) -> str:
    for earlier in sessions.list(project_id, 10):
        if earlier.id != current and earlier.summary:
            return f"Your last conversation with the user: {earlier.summary}"
    return ""


def prepare(state: AppState, body: Any) -> str:
    """For a ``persona:<project_id>`` chat: route it to the project and its session
    (sets ``project_id`` and, when absent, the open session's ``conversation_id``) and
    return the system prompt: the persona, the memories relevant to the message, the
    last session's summary. Empty for other chats."""
    project_id = persona_id(body)
    if project_id is None:
        return ""
    found = persona(state, project_id)
    body.project_id = body.project_id or project_id
    sessions = PersonaSessions(state.db)
    session = sessions.by_conversation(body.conversation_id) if body.conversation_id \
        else None
    if session is None and not body.conversation_id:
        session = sessions.newest(project_id, open_only=True) or \
            sessions.create(project_id)[0]
        body.conversation_id = session.conversation_id
    engine_off = (body.model_extra or {}).get("memoryEngine") == "off"
    return system_prompt(state, found, body.message, session,
                         remember=not body.incognito and not engine_off)


def persona(state: AppState, project_id: str) -> Project:
    """A persona project: 404 when there is none, 400 when the project is another kind."""
    found = project(state, project_id)
    if found.project_type != "persona":
        raise ApiError(400, "not_a_persona", f"Project '{project_id}' is not a persona "
                       f"(project_type '{found.project_type}')")
    return found


def system_prompt(state: AppState, found: Project, message: str, session: Session | None,
                  remember: bool = True) -> str:
    """What a persona is told before a turn: who it is, the memories relevant to
    ``message`` (reinforced by the recall) and the summary of its last session other than
    ``session``; spoken sessions ask for short replies."""
    parts = [persona_prompt(found)]
    memory = engine(state, found)
    if remember and memory.mode != "off":
        # No embedding run for a persona that remembers nothing yet.
        recalled = memory.recall(found.id, embed(state, [message])[0], RECALL_LIMIT) \
            if table.count(state.db, found.id) else []
        if recalled:
            parts.append(_remembered(recalled))
        parts.append(_last_session(PersonaSessions(state.db), found.id,
                                   session.id if session else ""))
    if session is not None and session.mode == "voice":
        parts.append("This conversation is spoken: keep replies to a few short sentences.")
    return "\n\n".join(p for p in parts if p)


def overview(state: AppState, found: Project) -> dict[str, Any]:
    """What GET /projects/{id} adds for a persona: its sessions (newest first), the
    active one (``active_session_id`` if open, else the newest open one) and how many
    memories it holds. Nothing for other projects."""
    if found.project_type != "persona":
        return {}
    sessions = PersonaSessions(state.db).list(found.id, 50)
    active_id = found.extra.get("active_session_id")
    active = next((s for s in sessions if s.id == active_id and s.ended_at is None), None) \
        or next((s for s in sessions if s.ended_at is None), None)
    return {"sessions": [s.model_dump() for s in sessions],
            "active_session": active.model_dump() if active else None,
            "memory_count": table.count(state.db, found.id)}
