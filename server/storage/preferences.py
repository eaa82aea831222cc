"""Which installed model each edit feature uses (``POST /v1/edit-models/preference``)."""

from __future__ import annotations

from server.storage.database import Database


class Preferences:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, mode: str) -> str | None:
        rows = self.db.read("SELECT model_id FROM model_preferences WHERE mode = ?", [mode])
        return rows[0][0] if rows else None

    def set(self, mode: str, model_id: str) -> None:
        with self.db.write() as cursor:
            cursor.execute("INSERT OR REPLACE INTO model_preferences (mode, model_id, "
                           "updated_at) VALUES (?, ?, current_timestamp)", [mode, model_id])
