"""Projects: CRUD, the four examples, and the project's documents list.

Stored in DuckDB (``server.storage.projects``), not in a JSON file as the reference does.
A project's files live in the file store under ``projects/<id>/``; deleting the project
removes them with its rows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from server.deps import State
from server.errors import ApiError
from server.routers.persona_common import own_hosts
from server.services import persona, persona_appearance
from server.state import AppState
from server.storage.knowledge import KnowledgeBase

router = APIRouter(tags=["projects"])
EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "project_examples.json"
Extra = dict[str, Any] | None


class ProjectIn(BaseModel):
    """POST /projects. ``files`` is accepted and ignored: documents come by upload."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    instructions: str = Field("", max_length=100_000)
    files: list[Any] = Field(default_factory=list, max_length=0)
    is_public: bool = False
    project_type: str = Field("chat", min_length=1, max_length=40)
    agentic: Extra = None
    persona_agent: Extra = None
    persona_appearance: Extra = None
    shared_api: Extra = None


class ProjectChanges(BaseModel):
    """PUT /projects/{id}: the updatable keys (others are ignored, as the reference does);
    the four objects are merged into the stored ones key by key."""

    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    instructions: str | None = Field(None, max_length=100_000)
    is_public: bool | None = None
    project_type: str | None = Field(None, min_length=1, max_length=40)
    agentic: Extra = None
    persona_agent: Extra = None
    persona_appearance: Extra = None
    shared_api: Extra = None


@lru_cache(maxsize=1)
def examples() -> list[dict[str, Any]]:
    return [{**example, "files": [], "is_public": True, "is_example": True,
             "created_at": 0, "updated_at": 0}
            for example in json.loads(EXAMPLES.read_text())]


def example(example_id: str) -> dict[str, Any] | None:
    return next((e for e in examples() if e["id"] == example_id), None)


def _missing(project_id: str) -> ApiError:
    return ApiError(404, "not_found", f"Project '{project_id}' not found")


def project_folder(state: AppState, project_id: str) -> Path:
    """Where the project's files live in the file store (``/files/projects/<id>/...``)."""
    return state.files.root / "projects" / project_id


@router.get("/projects")
async def list_projects(state: State) -> dict[str, Any]:
    found = await asyncio.to_thread(state.projects.list)
    return {"ok": True, "projects": [p.public() for p in found]}


@router.post("/projects", status_code=201)
async def create_project(body: ProjectIn, request: Request, state: State) -> dict[str, Any]:
    # A persona's own pictures are copied into its folder first (best effort).
    created = await asyncio.to_thread(persona_appearance.create, state,
                                      body.model_dump(exclude={"files"}),
                                      own_hosts(request, state))
    return {"ok": True, "project": created.public()}


@router.get("/projects/examples")
async def list_examples() -> dict[str, Any]:
    return {"ok": True, "examples": examples()}


@router.post("/projects/from-example/{example_id}", status_code=201)
async def from_example(example_id: str, state: State) -> dict[str, Any]:
    found = example(example_id)
    if found is None:
        raise ApiError(404, "not_found", "Example not found")
    created = await asyncio.to_thread(state.projects.create, {
        "name": found["name"], "description": found["description"],
        "instructions": found["instructions"], "is_public": False, "project_type": "chat"})
    return {"ok": True, "project": created.public()}


@router.get("/projects/{project_id}")
async def get_project(project_id: str, state: State) -> dict[str, Any]:
    found = await asyncio.to_thread(state.projects.get, project_id)
    if found is None:
        shown = example(project_id)
        if shown is None:
            raise _missing(project_id)
        return {"ok": True, "project": {**shown, "document_count": 0}}
    # A persona adds its sessions, active session and memory count.
    shown = await asyncio.to_thread(persona.overview, state, found)
    return {"ok": True, "project": {**found.public(), "document_count": len(found.files),
                                    **shown}}


@router.put("/projects/{project_id}")
async def update_project(project_id: str, request: Request, state: State,
                         body: ProjectChanges = Body(...)) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    updated = await asyncio.to_thread(persona_appearance.update, state, project_id, changes,
                                      own_hosts(request, state))
    if updated is None:
        raise _missing(project_id)
    return {"ok": True, "project": updated.public()}


@router.delete("/projects/{project_id}")
async def delete_project(project_id: str, state: State) -> dict[str, Any]:
    removed = await asyncio.to_thread(state.projects.delete, project_id)
    if removed is None:
        raise _missing(project_id)
    # The rows are gone (one transaction); the files follow. A file left behind by a
    # crash here is unreachable, never a project half there.
    KnowledgeBase(state.db).forget(project_id)
    await asyncio.to_thread(shutil.rmtree, project_folder(state, project_id), True)
    return {"ok": True, "message": "Project deleted successfully"}


@router.get("/projects/{project_id}/documents")
async def list_documents(project_id: str, state: State) -> dict[str, Any]:
    found = await asyncio.to_thread(state.projects.get, project_id)
    if found is None:
        raise _missing(project_id)
    return {"ok": True, "documents": found.public()["files"]}
