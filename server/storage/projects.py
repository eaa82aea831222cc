"""Projects and their documents, in DuckDB.

A project is the contract's Project object. Its plain fields are columns; the free-form
objects (``agentic``, ``persona_agent``, ``persona_appearance``, ``shared_api``) and the
conversation links are one JSON column, shallow-merged on update as the reference does.
Deleting a project removes every row that belongs to it, in every table that registers
itself in ``OWNED_TABLES`` (documents, the knowledge base's chunks, persona sessions and
memory, the project's chat messages), in one transaction: nothing is left half-deleted.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import BaseModel, Field

from server.storage.database import Database

# Objects merged key by key on update (the others are replaced whole)
MERGED = ("agentic", "persona_agent", "persona_appearance", "shared_api")
# Other keys kept in ``extra``, replaced whole on update (``persona_dependencies``: what
# of a persona's dependencies this server satisfies, recorded by install-deps)
LINKS = ("conversation_ids", "last_conversation_id", "active_session_id",
         "persona_dependencies")
# Tables whose rows are a project's (a ``project_id`` column): removed with it. Features
# that add such a table add it here.
OWNED_TABLES = ["project_documents", "knowledge_chunks", "persona_sessions",
                "persona_memory", "persona_avatar_versions",
                "messages"]  # the project's chats (a persona's sessions among them)


class Document(BaseModel):
    """One entry of a project's ``files``."""

    name: str
    size: str = Field(description="human size, 'x.xx MB'")
    size_bytes: int
    path: str
    chunks: int
    source_type: str  # "document" or "image"


class Project(BaseModel):
    id: str
    name: str
    description: str = ""
    instructions: str = ""
    files: list[Document] = []
    is_public: bool = False
    project_type: str = "chat"
    created_at: float
    updated_at: float
    extra: dict[str, Any] = {}

    def public(self) -> dict[str, Any]:
        """The wire shape: the plain fields, ``files``, and the extra objects at top level."""
        shown = self.model_dump(exclude={"extra"})
        shown["files"] = [{k: v for k, v in f.items() if k != "size_bytes"}
                          for f in shown["files"]]
        return {**shown, **self.extra}


def megabytes(size: int) -> str:
    return f"{size / 1024**2:.2f} MB"


class Projects:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading -----------------------------------------------------------------------

    def list(self) -> list[Project]:
        """Every project, most recently updated first."""
        rows = self.db.read(f"SELECT {_COLUMNS} FROM projects ORDER BY updated_at DESC, id")
        documents = self._documents([row[0] for row in rows])
        return [_project(row, documents.get(row[0], [])) for row in rows]

    def get(self, project_id: str) -> Project | None:
        rows = self.db.read(f"SELECT {_COLUMNS} FROM projects WHERE id = ?", [project_id])
        if not rows:
            return None
        return _project(rows[0], self._documents([project_id]).get(project_id, []))

    def _documents(self, ids: list[str]) -> dict[str, list[Document]]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self.db.read(
            "SELECT project_id, name, path, size_bytes, chunks, source_type FROM "
            f"project_documents WHERE project_id IN ({marks}) ORDER BY created_at, name", ids)
        found: dict[str, list[Document]] = {}
        for project_id, name, path, size, chunks, source_type in rows:
            found.setdefault(project_id, []).append(Document(
                name=name, size=megabytes(size), size_bytes=size, path=path, chunks=chunks,
                source_type=source_type))
        return found

    # -- writing -----------------------------------------------------------------------

    def create(self, fields: dict[str, Any], project_id: str | None = None) -> Project:
        """A new project from validated fields (``name`` and the optional others)."""
        now = time.time()
        project_id = project_id or str(uuid.uuid4())
        extra = {k: fields[k] for k in (*MERGED, *LINKS) if fields.get(k) is not None}
        with self.db.write() as cursor:
            cursor.execute(
                "INSERT INTO projects (id, name, description, instructions, is_public, "
                "project_type, extra, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [project_id, fields["name"], fields.get("description") or "",
                 fields.get("instructions") or "", bool(fields.get("is_public")),
                 fields.get("project_type") or "chat", json.dumps(extra), now, now])
        created = self.get(project_id)
        assert created is not None
        return created

    def update(self, project_id: str, changes: dict[str, Any]) -> Project | None:
        """Apply validated changes: plain fields replaced, MERGED objects shallow-merged,
        link fields replaced. None when there is no such project."""
        with self.db.write() as cursor:
            if not self.update_in(cursor, project_id, changes):
                return None
        return self.get(project_id)

    @staticmethod
    def update_in(cursor: Any, project_id: str, changes: dict[str, Any]) -> bool:
        """``update`` inside the caller's transaction (so another table's rows change
        with the project's, or not at all); False when there is no such project."""
        row = cursor.execute("SELECT extra FROM projects WHERE id = ?", [project_id]).fetchone()
        if row is None:
            return False
        extra = json.loads(row[0])
        for key in MERGED:
            if isinstance(changes.get(key), dict):
                extra[key] = {**(extra.get(key) or {}), **changes[key]}
        for key in LINKS:
            if key in changes:
                extra[key] = changes[key]
        plain = {k: changes[k] for k in ("name", "description", "instructions",
                                         "is_public", "project_type") if k in changes}
        sets = ", ".join(f"{key} = ?" for key in plain)
        cursor.execute(
            f"UPDATE projects SET {sets + ', ' if sets else ''}extra = ?, updated_at = ? "
            "WHERE id = ?", [*plain.values(), json.dumps(extra), time.time(), project_id])
        return True

    def delete(self, project_id: str) -> list[str] | None:
        """Remove the project and every row it owns in one transaction; the paths of its
        documents' files (for the caller to delete), or None when there is no such
        project."""
        with self.db.write() as cursor:
            if cursor.execute("SELECT 1 FROM projects WHERE id = ?",
                              [project_id]).fetchone() is None:
                return None
            paths = [r[0] for r in cursor.execute(
                "SELECT path FROM project_documents WHERE project_id = ?",
                [project_id]).fetchall()]
            for table in OWNED_TABLES:
                cursor.execute(f"DELETE FROM {table} WHERE project_id = ?", [project_id])
            cursor.execute("DELETE FROM projects WHERE id = ?", [project_id])
        return paths

    def add_document(self, project_id: str, document: Document) -> None:
        """Record a document (replacing one of the same name) and touch the project."""
        with self.db.write() as cursor:
            cursor.execute("DELETE FROM project_documents WHERE project_id = ? AND name = ?",
                           [project_id, document.name])
            cursor.execute(
                "INSERT INTO project_documents (project_id, name, path, size_bytes, chunks, "
                "source_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [project_id, document.name, document.path, document.size_bytes,
                 document.chunks, document.source_type, time.time()])
            cursor.execute("UPDATE projects SET updated_at = ? WHERE id = ?",
                           [time.time(), project_id])


_COLUMNS = ("id, name, description, instructions, is_public, project_type, extra, "
            "created_at, updated_at")


def _project(row: tuple[Any, ...], documents: list[Document]) -> Project:
    return Project(id=row[0], name=row[1], description=row[2], instructions=row[3],
                   is_public=row[4], project_type=row[5], extra=json.loads(row[6]),
                   created_at=row[7], updated_at=row[8], files=documents)
