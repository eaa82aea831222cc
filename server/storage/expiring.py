"""Files the store keeps only for a while (an incognito chat's pictures): shown to the
client that asked, then deleted by a periodic sweep unless a stored row names them."""

from __future__ import annotations

import time

from engine.files import FileStore
from server.storage.database import Database
from server.storage.references import FileReferences


class ExpiringFiles:
    def __init__(self, db: Database, files: FileStore, references: FileReferences) -> None:
        self.db = db
        self.files = files
        self.references = references

    def add(self, file_ids: list[str], ttl: float) -> None:
        if not file_ids:
            return
        expires = time.time() + ttl
        with self.db.write() as cursor:
            for file_id in file_ids:
                cursor.execute("INSERT OR REPLACE INTO expiring_files VALUES (?, ?)",
                               [file_id, expires])

    def sweep(self, now: float | None = None) -> int:
        """Delete the files whose time is up (those a stored row names since stay);
        returns how many were deleted."""
        now = time.time() if now is None else now
        due = [r[0] for r in self.db.read("SELECT file_id FROM expiring_files WHERE "
                                          "expires_at <= ?", [now])]
        if not due:
            return 0
        removed = self.references.remove_unused(self.files, due)
        with self.db.write() as cursor:
            cursor.execute("DELETE FROM expiring_files WHERE expires_at <= ?", [now])
        return removed
