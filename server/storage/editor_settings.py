"""The visual editor's settings, per user, as the ComfyUI frontend reads and writes them."""

from __future__ import annotations

import json
from typing import Any

from server.storage.database import Database


class EditorSettings:
    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self, user: str) -> dict[str, Any]:
        rows = self.db.read("SELECT key, value FROM editor_settings WHERE user_id = ? "
                            "ORDER BY key", [user])
        return {key: json.loads(value) for key, value in rows}

    def get(self, user: str, key: str) -> Any:
        rows = self.db.read("SELECT value FROM editor_settings WHERE user_id = ? AND key = ?",
                            [user, key])
        return json.loads(rows[0][0]) if rows else None

    def update(self, user: str, values: dict[str, Any]) -> None:
        """Set several settings in one transaction; a value of None deletes its key."""
        with self.db.write() as cursor:
            for key, value in values.items():
                if value is None:
                    cursor.execute("DELETE FROM editor_settings WHERE user_id = ? AND key = ?",
                                   [user, key])
                else:
                    cursor.execute("INSERT OR REPLACE INTO editor_settings (user_id, key, value,"
                                   " updated_at) VALUES (?, ?, ?, current_timestamp)",
                                   [user, key, json.dumps(value)])
