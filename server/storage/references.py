"""Which stored rows still name a file of the store.

The engine's cache hands the same file id to every run it serves from the cache, so two
conversations (or a conversation and an edit session) can show one file. A file is
deleted only when no row names it any more.
"""

from __future__ import annotations

from engine.errors import EngineError
from engine.files import FileStore
from server.storage.database import Database

# Every column that can hold a /files/<id> URL, as (table, column).
_COLUMNS = (("messages", "CAST(media AS VARCHAR)"), ("edit_versions", "url"),
            ("edit_versions", "parent_url"), ("edit_sessions", "active_image_url"),
            ("edit_sessions", "original_image_url"))


class FileReferences:
    def __init__(self, db: Database) -> None:
        self.db = db

    def in_use(self, file_ids: list[str]) -> set[str]:
        """The ids among ``file_ids`` that some stored row still names."""
        if not file_ids:
            return set()
        # Ids are f_ and hex digits (checked by the store), so LIKE needs no escaping.
        union = " UNION ALL ".join(
            f"SELECT id FROM wanted WHERE EXISTS (SELECT 1 FROM {table} WHERE {column} "
            f"LIKE '%' || wanted.id || '%')" for table, column in _COLUMNS)
        # One row per id, each a bound parameter: WITH wanted(id) AS (VALUES (?), (?), ...)
        rows_of_ids = ", ".join("(?)" for _ in file_ids)
        rows = self.db.read(f"WITH wanted(id) AS (VALUES {rows_of_ids}) {union}",
                            list(file_ids))
        return {row[0] for row in rows}

    def remove_unused(self, files: FileStore, file_ids: list[str]) -> int:
        """Delete those of ``file_ids`` that no stored row names; returns how many went."""
        kept = self.in_use(file_ids)
        removed = 0
        for file_id in file_ids:
            if file_id in kept:
                continue
            try:
                path = files.path(file_id)
            except EngineError:
                continue
            if path.is_file():
                path.unlink()
                removed += 1
        return removed
