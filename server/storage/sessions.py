"""Persona sessions in DuckDB: one conversation each, opened, reused, resumed and ended.

A session's ``message_count`` is counted in ``messages`` (the conversation's rows) every
time it is read, so it can never drift from what was said.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb
from pydantic import BaseModel

from server.storage.database import Database

Clock = Callable[[], float]
# A session this young with this few messages is picked up again instead of starting
# another (a page reload, a switch between text and voice).
REUSE_SECONDS = 600
REUSE_MESSAGES = 3


class Session(BaseModel):
    """The contract's Session object."""

    id: str
    project_id: str
    conversation_id: str
    mode: str  # "text" or "voice"
    title: str | None = None
    started_at: str
    ended_at: str | None = None
    message_count: int
    summary: str | None = None
    user_id: str | None = None


def stamp(epoch: float | None) -> str | None:
    """Epoch seconds as the contract's "YYYY-MM-DD HH:MM:SS" (UTC)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


_SELECT = ("SELECT s.id, s.project_id, s.conversation_id, s.mode, s.title, s.started_at, "
           "s.ended_at, s.summary, s.user_id, (SELECT count(*) FROM messages m WHERE "
           "m.conversation_id = s.conversation_id) AS message_count FROM persona_sessions s")


def _session(row: tuple[Any, ...]) -> Session:
    return Session(id=row[0], project_id=row[1], conversation_id=row[2], mode=row[3],
                   title=row[4], started_at=stamp(row[5]) or "", ended_at=stamp(row[6]),
                   summary=row[7], user_id=row[8], message_count=int(row[9]))


class PersonaSessions:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    def get(self, session_id: str) -> Session | None:
        rows = self.db.read(f"{_SELECT} WHERE s.id = ?", [session_id])
        return _session(rows[0]) if rows else None

    def by_conversation(self, conversation_id: str) -> Session | None:
        rows = self.db.read(f"{_SELECT} WHERE s.conversation_id = ? ORDER BY s.started_at "
                            "DESC LIMIT 1", [conversation_id])
        return _session(rows[0]) if rows else None

    def list(self, project_id: str, limit: int = 50, include_ended: bool = True) -> list[Session]:
        """The project's sessions, newest first."""
        ended = "" if include_ended else " AND s.ended_at IS NULL"
        rows = self.db.read(f"{_SELECT} WHERE s.project_id = ?{ended} ORDER BY s.started_at "
                            "DESC, s.id LIMIT ?", [project_id, limit])
        return [_session(row) for row in rows]

    def newest(self, project_id: str, open_only: bool) -> Session | None:
        found = self.list(project_id, 1, include_ended=not open_only)
        return found[0] if found else None

    def create(self, project_id: str, mode: str = "text", title: str | None = None,
               force_new: bool = False) -> tuple[Session, bool]:
        """(session, reused): the newest session of the project when it started less than
        ten minutes ago and has fewer than three messages (switched to ``mode`` and opened
        again), else a new one; ``force_new`` always starts one."""
        now = self.clock()
        row = None
        with self.db.write() as cursor:
            if not force_new:
                row = cursor.execute(
                    "SELECT s.id FROM persona_sessions s WHERE s.project_id = ? AND "
                    "s.started_at > ? AND (SELECT count(*) FROM messages m WHERE "
                    "m.conversation_id = s.conversation_id) < ? ORDER BY s.started_at DESC "
                    "LIMIT 1", [project_id, now - REUSE_SECONDS, REUSE_MESSAGES]).fetchone()
                if row is not None:
                    cursor.execute("UPDATE persona_sessions SET mode = ?, ended_at = NULL, "
                                   "title = coalesce(?, title) WHERE id = ?",
                                   [mode, title, row[0]])
                    session_id, reused = row[0], True
            if row is None:
                session_id, reused = str(uuid.uuid4()), False
                cursor.execute("INSERT INTO persona_sessions (id, project_id, conversation_id, "
                               "mode, title, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                               [session_id, project_id, str(uuid.uuid4()), mode, title, now])
        found = self.get(session_id)
        assert found is not None
        return found, reused

    def end(self, session_id: str, summary: str | None = None) -> bool:
        """Mark an open session ended (with its summary); False when it is unknown or
        already ended."""
        with self.db.write() as cursor:
            return self.end_in(cursor, session_id, summary)

    def end_in(self, cursor: duckdb.DuckDBPyConnection, session_id: str,
               summary: str | None) -> bool:
        """``end`` inside the caller's transaction (with the memories it extracted)."""
        row = cursor.execute("SELECT ended_at FROM persona_sessions WHERE id = ?",
                             [session_id]).fetchone()
        if row is None or row[0] is not None:
            return False
        cursor.execute("UPDATE persona_sessions SET ended_at = ?, summary = ? WHERE id = ?",
                       [self.clock(), summary, session_id])
        return True

    def count(self, project_id: str) -> int:
        return int(self.db.read("SELECT count(*) FROM persona_sessions WHERE project_id = ?",
                                [project_id])[0][0])
