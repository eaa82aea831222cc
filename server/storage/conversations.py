"""Conversations and their messages, with BM25 full-text search over message text."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from server.storage.database import Database


class StoredMessage(BaseModel):
    role: str
    content: str
    created_at: str
    media: dict[str, Any] | None = None


class ConversationSummary(BaseModel):
    conversation_id: str
    last_role: str
    last_content: str
    updated_at: str


class SearchHit(BaseModel):
    role: str
    content: str
    snippet: str
    timestamp: str
    relevance_score: float


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


class Conversations:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._index_stale = True
        self._index_lock = threading.Lock()

    def add(self, conversation_id: str, messages: list[tuple[str, str, dict[str, Any] | None]],
            project_id: str | None = None) -> None:
        """Store messages (role, content, media) in one transaction, in order."""
        with self.db.write() as cursor:
            for role, content, media in messages:
                cursor.execute("INSERT INTO messages (conversation_id, role, content, media, "
                               "project_id) VALUES (?, ?, ?, ?, ?)",
                               [conversation_id, role, content,
                                json.dumps(media) if media is not None else None, project_id])
        self._index_stale = True

    def recent(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        """The last ``limit`` messages, oldest first."""
        rows = self.db.read("SELECT role, content, created_at, media FROM (SELECT * FROM "
                            "messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?) "
                            "ORDER BY id", [conversation_id, limit])
        return [StoredMessage(role=r[0], content=r[1], created_at=_stamp(r[2]),
                              media=json.loads(r[3]) if r[3] else None) for r in rows]

    def messages(self, conversation_id: str, limit: int = 200) -> list[StoredMessage]:
        rows = self.db.read("SELECT role, content, created_at, media FROM messages WHERE "
                            "conversation_id = ? ORDER BY id LIMIT ?", [conversation_id, limit])
        return [StoredMessage(role=r[0], content=r[1], created_at=_stamp(r[2]),
                              media=json.loads(r[3]) if r[3] else None) for r in rows]

    def summaries(self, limit: int = 50,
                  project_id: str | None = None) -> list[ConversationSummary]:
        where, params = ("WHERE project_id = ?", [project_id]) if project_id else ("", [])
        rows = self.db.read(
            "SELECT conversation_id, arg_max(role, id), arg_max(content, id), max(created_at), "
            f"max(id) AS last FROM messages {where} GROUP BY conversation_id "
            "ORDER BY last DESC LIMIT ?", [*params, limit])
        return [ConversationSummary(conversation_id=r[0], last_role=r[1], last_content=r[2],
                                    updated_at=_stamp(r[3])) for r in rows]

    def media_files(self, conversation_id: str) -> list[str]:
        """File-store ids of the media the conversation produced (``/files/<id>``)."""
        rows = self.db.read("SELECT media FROM messages WHERE conversation_id = ? AND media "
                            "IS NOT NULL", [conversation_id])
        return sorted({f for (media,) in rows for f in produced_files(json.loads(media))})

    def delete(self, conversation_id: str) -> int:
        with self.db.write() as cursor:
            (count,) = cursor.execute("SELECT count(*) FROM messages WHERE conversation_id = ?",
                                      [conversation_id]).fetchone()
            cursor.execute("DELETE FROM messages WHERE conversation_id = ?", [conversation_id])
        self._index_stale = True
        return int(count)

    def search(self, conversation_id: str, query: str, limit: int = 20) -> list[SearchHit]:
        """BM25-ranked messages of one conversation that match ``query``, best first."""
        self._refresh_index()
        rows = self.db.read(
            "SELECT role, content, created_at, score FROM (SELECT *, "
            "fts_main_messages.match_bm25(id, ?) AS score FROM messages "
            "WHERE conversation_id = ?) WHERE score IS NOT NULL "
            "ORDER BY score DESC, id DESC LIMIT ?", [query, conversation_id, limit])
        return [SearchHit(role=r[0], content=r[1], snippet=snippet(r[1], query),
                          timestamp=_stamp(r[2]), relevance_score=round(float(r[3]), 4))
                for r in rows]

    def _refresh_index(self) -> None:
        # DuckDB's FTS index is a snapshot: rebuilt lazily, on the first search after writes.
        with self._index_lock:
            if self._index_stale:
                with self.db.write() as cursor:
                    cursor.execute("PRAGMA create_fts_index('messages', 'id', 'content', "
                                   "overwrite=1)")
                self._index_stale = False


def produced_files(media: Any) -> list[str]:
    """File-store ids of the media a reply produced (``/files/<id>`` URLs in it). The
    pictures a request started from (its source and mask) are the user's and are not."""
    if isinstance(media, dict):
        media = dict(media)
        media.pop("source_image", None)
        if isinstance(media.get("edit_settings"), dict):
            media["edit_settings"] = {k: v for k, v in media["edit_settings"].items()
                                      if k != "mask_url"}
    return sorted(set(re.findall(r"/files/(f_[0-9a-f]{20}(?:\.[a-z0-9]{1,8})?)",
                                 json.dumps(media))))


def snippet(text: str, query: str, width: int = 60) -> str:
    """The text around the first query word it contains, with '…' where it was cut."""
    words = [w for w in re.findall(r"\w+", query.lower()) if len(w) > 1]
    lowered = text.lower()
    positions = [lowered.find(w) for w in words if lowered.find(w) >= 0]
    if not positions:
        return text[: 2 * width] + ("…" if len(text) > 2 * width else "")
    at = min(positions)
    start, end = max(at - width, 0), min(at + width, len(text))
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
