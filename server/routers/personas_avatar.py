"""A persona's avatar versions and generated sets: commit an edited picture as a new
version, list the versions, go back to one, and commit generated pictures as a set."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from server.deps import State
from server.errors import ApiError
from server.routers.persona_common import own_hosts, persona_project
from server.services import avatar, avatar_history, persona_appearance
from server.services.avatar_history import HistoryEntry
from server.state import AppState

router = APIRouter(tags=["personas"])
Url = Annotated[str, Field(min_length=1, max_length=2048)]


class EditCommitIn(BaseModel):
    """Exactly one: an edit session (its active picture), a local picture URL (an edit
    result's ``/files/...``), or a file of the store."""

    model_config = ConfigDict(extra="ignore")
    edit_session_id: str | None = Field(None, min_length=1, max_length=200,
                                        pattern=r"^[A-Za-z0-9_.:\-]+$")
    source_url: Url | None = None
    source_filename: str | None = Field(None, min_length=1, max_length=512)


class RevertIn(BaseModel):
    """Exactly one: the version's file (store path or bare name) or its number."""

    model_config = ConfigDict(extra="ignore")
    filename: str | None = Field(None, min_length=1, max_length=512)
    version: int | None = Field(None, ge=1)


class GeneratedIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    image_urls: list[Url] = Field(min_length=1, max_length=32)
    set_id: str | None = Field(None, min_length=1, max_length=100,
                               pattern=r"^[A-Za-z0-9_.:\-]+$")
    prompt: str | None = Field(None, max_length=10_000)
    select: int | None = Field(None, ge=0, description="index of the picture to make "
                                                       "the avatar")


class HistoryOut(BaseModel):
    ok: bool = True
    project_id: str
    current: str | None
    versions: list[HistoryEntry]


def _edit_source(state: AppState, body: EditCommitIn,
                 hosts: set[str]) -> tuple[Path | None, str, str]:
    """The picture to commit, the name to report, and where it came from."""
    given = [v for v in (body.edit_session_id, body.source_url, body.source_filename) if v]
    if len(given) != 1:
        raise ApiError(400, "missing_source", "Provide exactly one of: edit_session_id, "
                       "source_url, source_filename")
    if body.source_filename:
        return avatar.store_path(state, body.source_filename), body.source_filename, \
            body.source_filename
    url = body.source_url
    if body.edit_session_id:
        url = state.edit_sessions.get(body.edit_session_id).active_image_url
        if not url:
            raise ApiError(404, "no_edit_result",
                           f"Edit session {body.edit_session_id!r} has no picture")
    assert url is not None
    source, name = avatar.url_source(state, url, hosts)
    return source, name, url


def _commit_edit(state: AppState, project_id: str, body: EditCommitIn,
                 hosts: set[str]) -> dict[str, Any]:
    project = persona_project(state, project_id)
    source, name, origin = _edit_source(state, body, hosts)
    if source is None or source.is_symlink() or not source.is_file():
        raise ApiError(404, "source_not_found", f"Source image not found: {name}")
    previous = (project.extra.get("persona_appearance") or {}).get("selected_filename")
    updated, version = avatar_history.commit_version(state, project_id, source, name, "edit",
                                                     origin)
    return {"ok": True, "project": updated.public(),
            "selected": updated.extra.get("persona_appearance") or {},
            "version": version.model_dump(), "previous_filename": previous}


@router.post("/projects/{project_id}/persona/avatar/commit_edit")
async def commit_edit(project_id: str, body: EditCommitIn, request: Request,
                      state: State) -> dict[str, Any]:
    """Commit an edited picture as a new avatar version; the previous one is kept."""
    return await asyncio.to_thread(_commit_edit, state, project_id, body,
                                   own_hosts(request, state))


def _history(state: AppState, project_id: str) -> HistoryOut:
    project = persona_project(state, project_id)
    versions = avatar_history.history(state, project)
    current = next((v.filename for v in versions if v.current), None)
    return HistoryOut(project_id=project_id, current=current, versions=versions)


@router.get("/projects/{project_id}/persona/avatar/history", response_model=HistoryOut)
async def avatar_versions(project_id: str, state: State) -> HistoryOut:
    """The avatar versions, newest first, the current one marked."""
    return await asyncio.to_thread(_history, state, project_id)


def _revert(state: AppState, project_id: str, body: RevertIn) -> dict[str, Any]:
    project = persona_project(state, project_id)
    if (body.filename is None) == (body.version is None):
        raise ApiError(400, "missing_version", "Provide exactly one of: filename, version")
    updated, entry = avatar_history.revert(state, project, body.filename, body.version)
    return {"ok": True, "project": updated.public(),
            "selected": updated.extra.get("persona_appearance") or {},
            "version": entry.model_dump()}


@router.post("/projects/{project_id}/persona/avatar/revert")
async def revert_avatar(project_id: str, body: RevertIn, state: State) -> dict[str, Any]:
    """Make an earlier avatar version current (its thumbnail re-synced)."""
    return await asyncio.to_thread(_revert, state, project_id, body)


def _generated(state: AppState, project_id: str, body: GeneratedIn,
               hosts: set[str]) -> dict[str, Any]:
    project = persona_project(state, project_id)
    updated, added = persona_appearance.commit_generated(
        state, project, body.image_urls, body.set_id, body.prompt, body.select, hosts)
    return {"ok": True, "project": updated.public(), "set": added,
            "selected": updated.extra.get("persona_appearance") or {}}


@router.post("/projects/{project_id}/persona/appearance/commit_generated")
async def commit_generated(project_id: str, body: GeneratedIn, request: Request,
                           state: State) -> dict[str, Any]:
    """Commit generated pictures as a new set of the persona's appearance, copied into
    its folder; ``select`` makes one of them the avatar."""
    return await asyncio.to_thread(_generated, state, project_id, body,
                                   own_hosts(request, state))
