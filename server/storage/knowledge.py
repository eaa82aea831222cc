"""Project knowledge bases in DuckDB: document chunks, their vectors, and both searches.

Chunks carry the MiniLM embedding (an HNSW index from vss answers nearest-neighbour
queries) and their text (BM25 from the in-memory ``Lexicon`` built from these rows). A
document's row and its chunks are written in one transaction, so a failed or cancelled
ingestion leaves nothing behind.
"""

from __future__ import annotations

import json
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel

from server.storage.database import Database
from server.storage.lexicon import Lexicon
from server.storage.projects import Document

DIMENSIONS = 384
# HNSW filters by project after its scan: ask it for this many neighbours per wanted hit,
# and fall back to an exact scan of the project's rows when too few are the project's.
OVERFETCH = 20


class Chunk(BaseModel):
    """One piece of a document as ingestion makes it."""

    page: int | None = None
    section: str = ""
    text: str


class Hit(BaseModel):
    """A chunk found by a search, with where it came from."""

    id: int
    document: str
    page: int | None
    section: str
    text: str
    score: float


# One lexicon per open database, whichever KnowledgeBase asks: it holds the BM25 postings.
_LEXICONS: weakref.WeakKeyDictionary[Database, Lexicon] = weakref.WeakKeyDictionary()


class KnowledgeBase:
    def __init__(self, db: Database) -> None:
        self.db = db
        lexicon = _LEXICONS.get(db)
        if lexicon is None:
            lexicon = _LEXICONS.setdefault(db, Lexicon(db))
        self.lexicon = lexicon

    # -- writing -----------------------------------------------------------------------

    def store(self, project_id: str, document: Document, chunks: list[Chunk],
              vectors: list[list[float]]) -> None:
        """Record the document (replacing one of the same name) with its chunks."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        rows = [{"page": c.page, "section": c.section, "position": i, "text": c.text,
                 "embedding": v} for i, (c, v) in enumerate(zip(chunks, vectors, strict=True))]
        with self.db.write() as cursor:
            _delete(cursor, project_id, document.name)
            cursor.execute(
                "INSERT INTO project_documents (project_id, name, path, size_bytes, chunks, "
                "source_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [project_id, document.name, document.path, document.size_bytes,
                 document.chunks, document.source_type, time.time()])
            if rows:
                # One JSON parameter for all rows: binding Python lists row by row is
                # about 100 ms per vector without pandas (OFFLINE-NOTES).
                cursor.execute(
                    "INSERT INTO knowledge_chunks (project_id, document, page, section, "
                    "position, text, embedding) SELECT $2, $3, r.page, r.section, "
                    "r.position, r.text, r.embedding FROM (SELECT unnest(from_json("
                    "$1::VARCHAR, '[{\"page\": \"INTEGER\", \"section\": \"VARCHAR\", "
                    "\"position\": \"INTEGER\", \"text\": \"VARCHAR\", "
                    f"\"embedding\": \"FLOAT[{DIMENSIONS}]\"}}]')) AS r)",
                    [json.dumps(rows), project_id, document.name])
            cursor.execute("UPDATE projects SET updated_at = ? WHERE id = ?",
                           [time.time(), project_id])
        self.lexicon.changed(project_id, document.name)

    def remove(self, project_id: str, name: str) -> str | None:
        """Delete a document's row and chunks; its stored path, or None when absent."""
        with self.db.write() as cursor:
            row = cursor.execute("SELECT path FROM project_documents WHERE project_id = ? "
                                 "AND name = ?", [project_id, name]).fetchone()
            if row is None:
                return None
            _delete(cursor, project_id, name)
            cursor.execute("UPDATE projects SET updated_at = ? WHERE id = ?",
                           [time.time(), project_id])
        self.lexicon.changed(project_id, name)
        return str(row[0])

    def forget(self, project_id: str) -> None:
        """The project and its rows are gone: drop its postings from memory."""
        self.lexicon.forget(project_id)

    # -- reading -----------------------------------------------------------------------

    def count(self, project_id: str) -> int:
        return int(self.db.read("SELECT count(*) FROM knowledge_chunks WHERE project_id = ?",
                                [project_id])[0][0])

    def candidates(self, project_id: str, text: str, vector: list[float],
                   k: int) -> dict[str, list[Hit]]:
        """Both rankings, ``{"vector": nearest, "keyword": BM25}``, searched at once on
        two cursors (DuckDB leaves the GIL while a query runs)."""
        with ThreadPoolExecutor(2) as pool:
            near = pool.submit(self.nearest, project_id, vector, k)
            best = pool.submit(self.keyword, project_id, text, k)
            return {"vector": near.result(), "keyword": best.result()}

    def nearest(self, project_id: str, vector: list[float], k: int) -> list[Hit]:
        """The project's k chunks closest to ``vector`` (cosine), closest first."""
        query = json.dumps(vector)
        # The distance is computed in an inner query sorted by it: vss replaces only that
        # shape (ORDER BY distance LIMIT n, no other computed column) with an HNSW scan.
        sql = ("SELECT id, document, page, section, text, 1 - d FROM (SELECT id, document, "
               "page, section, text, array_cosine_distance(embedding, "
               f"$1::VARCHAR::FLOAT[{DIMENSIONS}]) AS d FROM knowledge_chunks "
               "WHERE project_id = $2 ORDER BY d LIMIT $3)")
        rows = self.db.read(sql, [query, project_id, k * OVERFETCH])
        if len(rows) < k and len(rows) < self.count(project_id):
            # Other projects' chunks took the index's neighbours: scan this one exactly
            # (a subquery the HNSW scan cannot replace).
            rows = self.db.read(
                "SELECT * FROM (SELECT id, document, page, section, text, 1 - "
                f"array_cosine_distance(embedding, $1::VARCHAR::FLOAT[{DIMENSIONS}]) AS s "
                "FROM knowledge_chunks WHERE project_id = $2 OFFSET 0) ORDER BY s DESC "
                "LIMIT $3", [query, project_id, k])
        return [_hit(row) for row in rows[:k]]

    def keyword(self, project_id: str, text: str, k: int) -> list[Hit]:
        """The project's k best chunks for ``text`` by BM25 (Okapi, k1 1.2, b 0.75, the
        fts extension's formula), best first."""
        ranked = self.lexicon.search(project_id, text, k)
        if not ranked:
            return []
        # Only the winners' texts are read.
        marks = ", ".join("?" for _ in ranked)
        rows = {row[0]: row for row in self.db.read(
            "SELECT id, document, page, section, text FROM knowledge_chunks "
            f"WHERE id IN ({marks})", [i for i, _ in ranked])}
        return [_hit((*rows[i], s)) for i, s in ranked if i in rows]


def _delete(cursor: Any, project_id: str, name: str) -> None:
    cursor.execute("DELETE FROM knowledge_chunks WHERE project_id = ? AND document = ?",
                   [project_id, name])
    cursor.execute("DELETE FROM project_documents WHERE project_id = ? AND name = ?",
                   [project_id, name])


def _hit(row: tuple[Any, ...]) -> Hit:
    return Hit(id=row[0], document=row[1], page=row[2], section=row[3], text=row[4],
               score=float(row[5]))
