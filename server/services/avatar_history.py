"""A persona's avatar versions: committing a picture as a new version (the earlier ones
kept), listing them, and going back to one.

Each version is a pair of files in the persona's folder (the picture and its 256×256
WebP thumbnail, written by ``avatar.commit``) and a row of ``persona_avatar_versions``;
the current one is ``persona_appearance.selected_filename``. A version's row and the
project row that makes it current are written in one transaction.
"""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from engine.files import write_atomic
from server.errors import ApiError
from server.services import avatar
from server.state import AppState
from server.storage.avatar_versions import AvatarVersion, AvatarVersions, Origin
from server.storage.projects import Project, Projects


class HistoryEntry(BaseModel):
    """One avatar version as GET .../avatar/history shows it. ``version`` is None for a
    current avatar no commit recorded (set by hand, imported, or older than the
    history)."""

    version: int | None
    filename: str
    thumb_filename: str
    url: str
    thumb_url: str | None
    origin: str
    source_url: str | None = None
    created_at: float | None = None
    current: bool
    exists: bool


def shows(state: AppState, current: Any, picture: Path) -> bool:
    """Whether the avatar file ``current`` holds exactly ``picture``'s bytes."""
    path = avatar.store_path(state, current) if isinstance(current, str) else None
    return path is not None and path.is_file() and path.read_bytes() == picture.read_bytes()


def _appearance_in(cursor: Any, project_id: str) -> dict[str, Any] | None:
    row = cursor.execute("SELECT extra FROM projects WHERE id = ?", [project_id]).fetchone()
    if row is None:
        return None
    found = json.loads(row[0]).get("persona_appearance")
    return found if isinstance(found, dict) else {}


def _adopt_in(cursor: Any, project_id: str, appearance: dict[str, Any]) -> None:
    """Record the current avatar when no commit did, so that replacing it keeps it."""
    current = appearance.get("selected_filename")
    if not isinstance(current, str) or not current:
        return
    if any(v.filename == current for v in AvatarVersions.listed_in(cursor, project_id)):
        return
    thumb = appearance.get("selected_thumb_filename")
    AvatarVersions.add_in(cursor, project_id, current, thumb if isinstance(thumb, str) else "",
                          "adopted")


def record_in(cursor: Any, project_id: str, paths: dict[str, str], origin: Origin,
              source_url: str | None = None) -> AvatarVersion | None:
    """Record ``paths`` (``selected_filename``/``selected_thumb_filename``) as the newest
    version, the avatar it replaces recorded first if it never was; None when there is
    no such project. The caller then makes it current in the same transaction."""
    appearance = _appearance_in(cursor, project_id)
    if appearance is None:
        return None
    _adopt_in(cursor, project_id, appearance)
    return AvatarVersions.add_in(cursor, project_id, paths["selected_filename"],
                                 paths["selected_thumb_filename"], origin, source_url)


def commit_version(state: AppState, project_id: str, source: Path, name: str,
                   origin: Origin, source_url: str | None = None,
                   extra: dict[str, Any] | None = None) -> tuple[Project, AvatarVersion]:
    """Copy ``source`` in as the new avatar (and thumbnail), record it and make it
    current; ``extra`` are more persona_appearance keys changed with it. The picture the
    avatar already shows is not copied again (it only becomes the newest version)."""
    found = state.projects.get(project_id)
    appearance = (found.extra.get("persona_appearance") or {}) if found else {}
    current, thumb = appearance.get("selected_filename"), appearance.get(
        "selected_thumb_filename")
    if shows(state, current, source) and isinstance(thumb, str) and thumb:
        paths = {"selected_filename": str(current), "selected_thumb_filename": thumb}
    else:
        paths = avatar.commit(state, project_id, source, name)
    with state.db.write() as cursor:
        added = record_in(cursor, project_id, paths, origin, source_url)
        if added is None or not Projects.update_in(
                cursor, project_id, {"persona_appearance": {**(extra or {}), **paths}}):
            raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    updated = state.projects.get(project_id)
    if updated is None:  # deleted meanwhile: its folder goes with it
        raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    return updated, added


def _entry(state: AppState, version: AvatarVersion | None, current: str | None,
           appearance: dict[str, Any]) -> HistoryEntry:
    filename = version.filename if version else str(current)
    thumb = version.thumb_filename if version else str(
        appearance.get("selected_thumb_filename") or "")
    path = avatar.store_path(state, filename)
    return HistoryEntry(
        version=version.version if version else None, filename=filename,
        thumb_filename=thumb, url=f"/files/{filename}",
        thumb_url=f"/files/{thumb}" if thumb else None,
        origin=version.origin if version else "unrecorded",
        source_url=version.source_url if version else None,
        created_at=version.created_at if version else None, current=filename == current,
        exists=path is not None and path.is_file())


def history(state: AppState, project: Project) -> list[HistoryEntry]:
    """The avatar versions, newest first, the current one marked (and listed first when
    no commit recorded it)."""
    appearance = project.extra.get("persona_appearance") or {}
    current = appearance.get("selected_filename")
    current = current if isinstance(current, str) and current else None
    versions = AvatarVersions(state.db).list(project.id)
    shown = [_entry(state, v, current, appearance) for v in versions]
    if current and not any(v.filename == current for v in versions):
        shown.insert(0, _entry(state, None, current, appearance))
    return shown


# -- going back ------------------------------------------------------------------------

def _find(entries: list[HistoryEntry], filename: str | None,
          version: int | None) -> HistoryEntry:
    for entry in entries:
        if version is not None and entry.version == version:
            return entry
        if filename and filename in (entry.filename, PurePosixPath(entry.filename).name):
            return entry
    wanted = f"version {version}" if version is not None else repr(filename)
    raise ApiError(404, "version_not_found", f"This persona has no avatar version {wanted}")


def _thumb_ok(path: Path) -> bool:
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            return image.format == "WEBP" and image.size == (avatar.THUMB_SIZE,) * 2
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def _synced_thumb(state: AppState, project_id: str, entry: HistoryEntry,
                  picture: Path) -> str:
    """The version's thumbnail path, written again from its picture when it is missing
    or not a 256×256 WebP (a thumbnail never disagrees with the avatar it shows)."""
    thumb = avatar.store_path(state, entry.thumb_filename) if entry.thumb_filename else None
    folder = avatar.appearance_folder(state, project_id)
    if thumb is None or not thumb.is_relative_to(folder):
        thumb = folder / f"thumb_{picture.stem}.webp"
    if not (thumb.is_file() and not thumb.is_symlink() and _thumb_ok(thumb)):
        write_atomic(thumb, avatar.thumbnail(picture.read_bytes()))
    return avatar.relative(state, thumb)


def revert(state: AppState, project: Project, filename: str | None,
           version: int | None) -> tuple[Project, HistoryEntry]:
    """Make an earlier version current, its thumbnail re-synced."""
    entry = _find(history(state, project), filename, version)
    picture = avatar.store_path(state, entry.filename)
    if picture is None or picture.is_symlink() or not picture.is_file():
        raise ApiError(409, "version_missing",
                       f"The picture of avatar version {entry.filename!r} is gone")
    avatar.checked_image(picture.read_bytes(), f"Avatar version {entry.filename}")
    thumb = _synced_thumb(state, project.id, entry, picture)
    paths = {"selected_filename": entry.filename, "selected_thumb_filename": thumb}
    with state.db.write() as cursor:
        appearance = _appearance_in(cursor, project.id)
        if appearance is None:
            raise ApiError(404, "not_found", f"Project '{project.id}' not found")
        _adopt_in(cursor, project.id, appearance)
        AvatarVersions.set_thumb_in(cursor, project.id, entry.filename, thumb)
        Projects.update_in(cursor, project.id, {"persona_appearance": paths})
    updated = state.projects.get(project.id)
    if updated is None:
        raise ApiError(404, "not_found", f"Project '{project.id}' not found")
    return updated, entry.model_copy(update={"thumb_filename": thumb, "current": True,
                                             "thumb_url": f"/files/{thumb}"})
