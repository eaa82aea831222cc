"""A persona's avatar versions, in DuckDB (``persona_avatar_versions``, migration 011).

Rows only say which pictures were the avatar and in what order; the pictures are files
of the persona's folder, and the current one is the project's ``selected_filename``.
Writes happen inside the caller's transaction, so a version and the project row that
makes it current change together or not at all.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel

from server.storage.database import Database

Origin = Literal["commit", "edit", "generated", "adopted"]


class AvatarVersion(BaseModel):
    version: int
    filename: str
    thumb_filename: str
    origin: Origin
    source_url: str | None = None
    created_at: float


_COLUMNS = "version, filename, thumb_filename, origin, source_url, created_at"


def _version(row: tuple[Any, ...]) -> AvatarVersion:
    return AvatarVersion(version=row[0], filename=row[1], thumb_filename=row[2],
                         origin=row[3], source_url=row[4], created_at=row[5])


class AvatarVersions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, project_id: str) -> list[AvatarVersion]:
        """The versions, newest first."""
        rows = self.db.read(f"SELECT {_COLUMNS} FROM persona_avatar_versions WHERE "
                            "project_id = ? ORDER BY version DESC", [project_id])
        return [_version(row) for row in rows]

    @staticmethod
    def listed_in(cursor: Any, project_id: str) -> list[AvatarVersion]:
        rows = cursor.execute(f"SELECT {_COLUMNS} FROM persona_avatar_versions WHERE "
                              "project_id = ? ORDER BY version DESC", [project_id]).fetchall()
        return [_version(row) for row in rows]

    @staticmethod
    def add_in(cursor: Any, project_id: str, filename: str, thumb_filename: str,
               origin: Origin, source_url: str | None = None) -> AvatarVersion:
        """Record ``filename`` as the newest version. A picture recorded before (the same
        file committed again) moves to the top instead of being listed twice."""
        cursor.execute("DELETE FROM persona_avatar_versions WHERE project_id = ? AND "
                       "filename = ?", [project_id, filename])
        top = cursor.execute("SELECT max(version) FROM persona_avatar_versions WHERE "
                             "project_id = ?", [project_id]).fetchone()[0]
        added = AvatarVersion(version=(top or 0) + 1, filename=filename,
                              thumb_filename=thumb_filename, origin=origin,
                              source_url=source_url, created_at=time.time())
        cursor.execute(f"INSERT INTO persona_avatar_versions (project_id, {_COLUMNS}) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [project_id, added.version, filename, thumb_filename, origin,
                        source_url, added.created_at])
        return added

    @staticmethod
    def set_thumb_in(cursor: Any, project_id: str, filename: str, thumb: str) -> None:
        cursor.execute("UPDATE persona_avatar_versions SET thumb_filename = ? WHERE "
                       "project_id = ? AND filename = ?", [thumb, project_id, filename])
