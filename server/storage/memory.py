"""Rows of ``persona_memory``: reading them, and the writes the memory engines make.

Writes take the caller's cursor, so an engine's read-decide-write (an upsert, a
consolidation, a session's extracted memories with its end) is one transaction under
the database's single writer lock.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
from pydantic import BaseModel, Field

from server.storage.database import Database
from server.storage.sessions import stamp

# The columns, in table order, as the engines see them (the embedding parsed).
COLUMNS = ("id", "project_id", "category", "key", "value", "confidence", "source_session",
           "source_type", "visibility", "created_at", "updated_at", "mem_type", "strength",
           "importance", "last_access_at", "access_count", "last_seen_at", "is_pinned",
           "expires_at", "user_id", "embedding", "decayed_at")
# What the API shows: everything but the engine's own bookkeeping.
HIDDEN = {"embedding", "decayed_at"}


class Record(BaseModel):
    """One memory as stored."""

    id: int = 0
    project_id: str
    category: str
    key: str
    value: str
    confidence: float = 1.0
    source_session: str | None = None
    source_type: str = "user_statement"
    visibility: str = "private"
    created_at: float
    updated_at: float
    mem_type: str = "W"
    strength: float = 1.0
    importance: float = 0.5
    last_access_at: float
    access_count: int = 0
    last_seen_at: float
    is_pinned: int = 0
    expires_at: float | None = None
    user_id: str | None = None
    embedding: list[float] | None = Field(None, repr=False)
    decayed_at: float

    def public(self) -> dict[str, Any]:
        """The contract's Memory row (created_at/updated_at as "YYYY-MM-DD HH:MM:SS")."""
        row = self.model_dump(exclude=HIDDEN)
        row["created_at"], row["updated_at"] = stamp(self.created_at), stamp(self.updated_at)
        return row


def _record(row: tuple[Any, ...]) -> Record:
    fields = dict(zip(COLUMNS, row, strict=True))
    fields["embedding"] = json.loads(fields["embedding"]) if fields["embedding"] else None
    return Record.model_validate(fields)


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM persona_memory"
Reader = Database | duckdb.DuckDBPyConnection


def records(source: Reader, project_id: str, category: str | None = None) -> list[Record]:
    """The project's memories (of one category), oldest first. ``source`` is the database
    or a cursor inside a write."""
    where, params = "WHERE project_id = ?", [project_id]
    if category is not None:
        where, params = where + " AND category = ?", [*params, category]
    sql = f"{_SELECT} {where} ORDER BY id"
    rows = source.read(sql, params) if isinstance(source, Database) \
        else source.execute(sql, params).fetchall()
    return [_record(row) for row in rows]


def insert(cursor: duckdb.DuckDBPyConnection, record: Record) -> int:
    fields = record.model_dump(exclude={"id"})
    fields["embedding"] = json.dumps(record.embedding) if record.embedding else None
    names = list(fields)
    (new_id,) = cursor.execute(
        f"INSERT INTO persona_memory ({', '.join(names)}) VALUES "
        f"({', '.join('?' for _ in names)}) RETURNING id", list(fields.values())).fetchone()
    return int(new_id)


def update(cursor: duckdb.DuckDBPyConnection, record: Record) -> None:
    """Write every field of an existing row back."""
    fields = record.model_dump(exclude={"id", "project_id"})
    fields["embedding"] = json.dumps(record.embedding) if record.embedding else None
    sets = ", ".join(f"{name} = ?" for name in fields)
    cursor.execute(f"UPDATE persona_memory SET {sets} WHERE id = ?",
                   [*fields.values(), record.id])


def delete(cursor: duckdb.DuckDBPyConnection, ids: list[int]) -> int:
    if not ids:
        return 0
    marks = ", ".join("?" for _ in ids)
    cursor.execute(f"DELETE FROM persona_memory WHERE id IN ({marks})", ids)
    return len(ids)


def count(db: Database, project_id: str) -> int:
    return int(db.read("SELECT count(*) FROM persona_memory WHERE project_id = ?",
                       [project_id])[0][0])
