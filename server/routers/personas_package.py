"""Persona avatars and ``.hpersona`` packages: avatar commit, export, import, preview,
and the persona's own pictures under ``/files/projects/<id>/persona/...``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from server.deps import State
from server.errors import ApiError
from server.routers import personas_avatar, personas_import
from server.routers.persona_common import own_hosts, persona_project
from server.services import avatar, avatar_history, package
from server.state import AppState

router = APIRouter(tags=["personas"])
# The avatar-version and dependency routes live in their own modules, served with these.
router.include_router(personas_avatar.router)
router.include_router(personas_import.router)


class AvatarCommitIn(BaseModel):
    """Exactly where the avatar comes from: a file of the store, a local ``/files/...``
    URL, or ``auto`` (the picture ``persona_appearance.selected`` points at)."""

    model_config = ConfigDict(extra="ignore")
    source_filename: str | None = Field(None, max_length=512)
    source_url: str | None = Field(None, max_length=2048)
    auto: bool = False


def _commit(state: AppState, project_id: str, body: AvatarCommitIn,
            hosts: set[str]) -> dict[str, Any]:
    project = persona_project(state, project_id)
    if not (body.source_filename or body.source_url or body.auto):
        raise ApiError(400, "missing_source",
                       "Provide one of: source_filename, source_url, or auto:true")
    appearance = project.extra.get("persona_appearance") or {}
    if body.source_filename:
        source: Path | None = avatar.store_path(state, body.source_filename)
        name = body.source_filename
    else:
        url = body.source_url or avatar.selected_url(appearance)
        source, name = avatar.url_source(state, url, hosts)
    if source is None:
        raise ApiError(404, "source_not_found", f"Source image not found: {name}")
    updated, _ = avatar_history.commit_version(state, project_id, source, name, "commit",
                                               body.source_url)
    return {"ok": True, "project": updated.public(),
            "selected": updated.extra.get("persona_appearance") or {}}


@router.post("/projects/{project_id}/persona/avatar/commit")
async def commit_avatar(project_id: str, body: AvatarCommitIn, request: Request,
                        state: State) -> dict[str, Any]:
    return await asyncio.to_thread(_commit, state, project_id, body,
                                   own_hosts(request, state))


def _export(state: AppState, project_id: str, mode: Literal["blueprint", "full"],
            hosts: set[str]) -> tuple[str, bytes]:
    found = state.projects.get(project_id)
    if found is None:
        raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    appearance = found.extra.get("persona_appearance") or {}
    if found.project_type == "persona" and appearance.get("selected") \
            and not appearance.get("selected_filename"):
        # Picked but never committed (as the reference does, commit it first): the
        # package should carry the avatar the user sees.
        try:
            _commit(state, project_id, AvatarCommitIn(auto=True), hosts)
            found = state.projects.get(project_id) or found
        except ApiError:
            pass  # the picture is gone or not local: the package has no avatar
    return package.export(state, found, mode)


@router.get("/projects/{project_id}/persona/export", response_class=Response,
            responses={200: {"content": {"application/zip": {}},
                             "description": "the .hpersona package"}})
async def export_persona(project_id: str, request: Request, state: State,
                         mode: Literal["blueprint", "full"] = Query(
                             "blueprint", description="blueprint: the avatar, its "
                             "thumbnail and outfit pictures; full: also every other "
                             "picture of the persona's folder")) -> Response:
    filename, data = await asyncio.to_thread(_export, state, project_id, mode,
                                             own_hosts(request, state))
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/persona/import/preview")
async def preview_package(file: UploadFile, state: State) -> dict[str, Any]:
    parsed = await personas_import.parsed_package(file, state)
    return await asyncio.to_thread(package.preview, state, parsed)


@router.post("/persona/import", status_code=201)
async def import_package(file: UploadFile, state: State) -> dict[str, Any]:
    parsed = await personas_import.parsed_package(file, state)
    created = await asyncio.to_thread(package.install, state, parsed)
    return {"ok": True, "project": created.public()}


MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}
PICTURES = {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))},
            "description": "the picture"}


@router.get("/files/projects/{project_id}/persona/{path:path}", response_class=FileResponse,
            responses={200: PICTURES})
def persona_file(project_id: str, path: str, state: State) -> FileResponse:
    """A persona's own pictures (avatar, thumbnail, outfits), as its ``selected_filename``
    paths name them."""
    found = avatar.store_path(state, f"projects/{project_id}/persona/{path}")
    if found is None or not found.is_file() or found.suffix.lower() not in MEDIA_TYPES:
        raise ApiError(404, "file_not_found", f"no file persona/{path} in project {project_id}")
    return FileResponse(found, media_type=MEDIA_TYPES[found.suffix.lower()])
