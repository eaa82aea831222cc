"""Importing a persona with its dependencies: what would satisfy them here
(resolve-deps), recording the ones this server satisfies (install-deps), and an import
that resolves them as one all-or-nothing operation (atomic)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from server.deps import State
from server.routers.persona_common import persona_project
from server.routers.uploads import read_capped
from server.services import dependency, dependency_install, package
from server.services.dependency_install import InstallItem
from server.state import AppState

router = APIRouter(tags=["personas"])


class InstallDepsIn(BaseModel):
    """``items`` omitted: the project's own dependencies (as its export lists them)."""

    model_config = ConfigDict(extra="ignore")
    project_id: str = Field(min_length=1, max_length=200)
    items: list[InstallItem] | None = Field(None, max_length=200)


async def parsed_package(file: UploadFile, state: AppState) -> package.Package:
    data = await read_capped(file, state.settings.max_upload_mb)
    return await asyncio.to_thread(package.parse, data)


def _resolve(state: AppState, parsed: package.Package) -> dict[str, Any]:
    check = dependency.check(parsed.dependencies, state.model_store)
    resolutions = dependency_install.resolve(check, state.model_store)
    return {"ok": True, "dependency_check": check.model_dump(),
            "resolutions": [r.model_dump() for r in resolutions],
            "all_resolvable": all(r.resolvable for r in resolutions if r.required)}


@router.post("/persona/import/resolve-deps")
async def resolve_deps(file: UploadFile, state: State) -> dict[str, Any]:
    """The package's dependency check and, per unmet dependency, what installed here
    would satisfy it. Writes nothing."""
    parsed = await parsed_package(file, state)
    return await asyncio.to_thread(_resolve, state, parsed)


def _install(state: AppState, body: InstallDepsIn) -> dict[str, Any]:
    project = persona_project(state, body.project_id)
    return dependency_install.install_on(state, project, body.items)


@router.post("/persona/import/install-deps")
async def install_deps(body: InstallDepsIn, state: State) -> dict[str, Any]:
    """Record on a persona the dependencies this server satisfies (installed models,
    built-in tools); per item, what could not be (nothing is downloaded)."""
    return await asyncio.to_thread(_install, state, body)


@router.post("/persona/import/atomic", status_code=201)
async def import_atomic(file: UploadFile, state: State,
                        auto_install_servers: bool = Query(
                            True, description="refuse the import when the package needs "
                            "MCP servers or A2A agents (this server cannot install them); "
                            "false imports the persona without them"),
                        force_reinstall: bool = Query(
                            False, description="accepted for compatibility: nothing is "
                            "installed from the network here")) -> dict[str, Any]:
    """Import and resolve dependencies as one operation: the persona is created with its
    dependency record, or nothing is written."""
    parsed = await parsed_package(file, state)
    return await asyncio.to_thread(dependency_install.atomic_import, state, parsed,
                                   auto_install_servers, force_reinstall)
