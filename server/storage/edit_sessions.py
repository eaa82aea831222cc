"""Edit sessions: a picture being edited step by step, and its versions, in DuckDB.

A session is keyed by the client's conversation id. ``versions`` lists the session's
pictures most recent first (at most ``HISTORY_LIMIT``); the active picture is the one the
next instruction edits. Sessions untouched for ``TTL`` seconds are gone.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, Field

from server.storage.database import Database

HISTORY_LIMIT = 10
TTL = 7 * 24 * 3600
UPLOAD = "[Original Upload]"
SELECTED = "[Selected as base]"


class Version(BaseModel):
    url: str
    instruction: str
    created_at: float
    parent_url: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class EditState(BaseModel):
    conversation_id: str
    active_image_url: str | None = None
    original_image_url: str | None = None
    versions: list[Version] = Field(default_factory=list)
    history: list[str] = Field(default_factory=list, description="version urls (legacy)")


class EditSessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, session_id: str) -> EditState:
        """The session's state; an unknown or expired id gives an empty state."""
        rows = self.db.read("SELECT active_image_url, original_image_url, updated_at "
                            "FROM edit_sessions WHERE id = ?", [session_id])
        if not rows or rows[0][2] < time.time() - TTL:
            return EditState(conversation_id=session_id)
        versions = [Version(url=r[0], instruction=r[1], created_at=r[2], parent_url=r[3],
                            settings=json.loads(r[4]))
                    for r in self.db.read(
                        "SELECT url, instruction, created_at, parent_url, settings "
                        "FROM edit_versions WHERE session_id = ? ORDER BY seq DESC",
                        [session_id])]
        return EditState(conversation_id=session_id, active_image_url=rows[0][0],
                         original_image_url=rows[0][1], versions=versions,
                         history=[v.url for v in versions])

    def delete(self, session_id: str) -> None:
        with self.db.write() as cursor:
            cursor.execute("DELETE FROM edit_versions WHERE session_id = ?", [session_id])
            cursor.execute("DELETE FROM edit_sessions WHERE id = ?", [session_id])

    def start(self, session_id: str, url: str) -> EditState:
        """A fresh session (any earlier one is replaced) whose original is ``url``."""
        now = time.time()
        with self.db.write() as cursor:
            cursor.execute("DELETE FROM edit_versions WHERE session_id = ?", [session_id])
            cursor.execute("INSERT OR REPLACE INTO edit_sessions (id, active_image_url, "
                           "original_image_url, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?)", [session_id, url, url, now, now])
            self._push(cursor, session_id, Version(url=url, instruction=UPLOAD,
                                                   created_at=now))
        return self.get(session_id)

    def add(self, session_id: str, version: Version) -> EditState:
        """Record an edit result; it becomes the active picture."""
        with self.db.write() as cursor:
            self._push(cursor, session_id, version)
            cursor.execute("UPDATE edit_sessions SET active_image_url = ?, updated_at = ? "
                           "WHERE id = ?", [version.url, time.time(), session_id])
        return self.get(session_id)

    def activate(self, session_id: str, url: str, bring_to_top: bool) -> EditState:
        """Make ``url`` active. ``bring_to_top``: it also becomes the most recent version
        (a known version keeps its instruction; a new one is marked as selected)."""
        state = self.get(session_id)
        with self.db.write() as cursor:
            if bring_to_top:
                known = next((v for v in state.versions if v.url == url), None)
                cursor.execute("DELETE FROM edit_versions WHERE session_id = ? AND url = ?",
                               [session_id, url])
                self._push(cursor, session_id, known or Version(
                    url=url, instruction=SELECTED, created_at=time.time(),
                    parent_url=state.active_image_url))
            cursor.execute("UPDATE edit_sessions SET active_image_url = ?, updated_at = ? "
                           "WHERE id = ?", [url, time.time(), session_id])
        return self.get(session_id)

    def remove_version(self, session_id: str, url: str) -> EditState:
        """Forget one version. If it was the active picture, the most recent version left
        becomes active (none left: the session is empty)."""
        with self.db.write() as cursor:
            cursor.execute("DELETE FROM edit_versions WHERE session_id = ? AND url = ?",
                           [session_id, url])
            cursor.execute("SELECT url FROM edit_versions WHERE session_id = ? "
                           "ORDER BY seq DESC LIMIT 1", [session_id])
            latest = cursor.fetchone()
            cursor.execute("UPDATE edit_sessions SET active_image_url = CASE WHEN "
                           "active_image_url = ? THEN ? ELSE active_image_url END, "
                           "updated_at = ? WHERE id = ?",
                           [url, latest[0] if latest else None, time.time(), session_id])
        return self.get(session_id)

    @staticmethod
    def _push(cursor: Any, session_id: str, version: Version) -> None:
        cursor.execute("SELECT coalesce(max(seq), 0) FROM edit_versions WHERE session_id = ?",
                       [session_id])
        seq = cursor.fetchone()[0] + 1
        cursor.execute("INSERT INTO edit_versions (session_id, seq, url, instruction, "
                       "created_at, parent_url, settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [session_id, seq, version.url, version.instruction, version.created_at,
                        version.parent_url, json.dumps(version.settings)])
        cursor.execute("DELETE FROM edit_versions WHERE session_id = ? AND seq <= ?",
                       [session_id, seq - HISTORY_LIMIT])
