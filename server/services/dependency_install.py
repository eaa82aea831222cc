"""Satisfying a persona's dependencies from what this server has: what would satisfy
each unmet one (resolve), recording the satisfiable ones on a project (install), and an
import that does both at once or nothing (atomic).

Nothing is ever downloaded: a model must already be in the model store, a tool must be
one of the built-in tools. MCP servers, A2A agents and gateway tools need the network
(and a gateway this server does not run), so they are answered ``cannot_install``.
"""

from __future__ import annotations

import difflib
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.models.store import ModelStore
from server.errors import ApiError
from server.services import dependency
from server.services.dependency import Dependency, DependencyCheck, Kind, Status
from server.services.package import Package, install
from server.state import AppState
from server.storage.projects import Project

ALL_MODEL_KINDS = (*dependency.IMAGE_KINDS, *dependency.LLM_KINDS)
NO_DOWNLOADS = "this server installs nothing from the network"


class Resolution(BaseModel):
    """What would satisfy one unmet dependency here."""

    name: str
    kind: Kind
    status: Status
    required: bool
    resolvable: bool
    action: Literal["use_installed", "use_fallback", "cannot_install"]
    options: list[str] = Field(default_factory=list,
                               description="installed models or built-in tools that fit")
    detail: str


class InstallItem(BaseModel):
    """One dependency to satisfy; ``use``: the installed model or built-in tool to
    satisfy it with (default: the dependency's own name)."""

    kind: Kind
    name: str = Field(min_length=1, max_length=300)
    use: str | None = Field(None, min_length=1, max_length=300)


class ItemResult(BaseModel):
    kind: Kind
    name: str
    status: Literal["satisfied", "cannot_install", "not_found"]
    satisfied_by: str | None = None
    detail: str


def _lines(check: DependencyCheck) -> list[Dependency]:
    return [*check.models, *check.tools, *check.mcp_servers, *check.a2a_agents]


# -- resolve ----------------------------------------------------------------------------

def _resolve_model(line: Dependency, store: ModelStore) -> Resolution:
    kinds = dependency.model_kinds(line)
    options = [m.id for m in store.list() if m.kind in kinds]
    base = {"name": line.name, "kind": line.kind, "status": line.status,
            "required": line.required, "options": options}
    if not options:
        return Resolution(**base, resolvable=False, action="cannot_install",
                          detail=f"no {'/'.join(kinds)} model is installed and {NO_DOWNLOADS}; "
                                 "install one (`homepilot models install ...`) and retry")
    chosen = line.fallback or options[0]
    return Resolution(**base, resolvable=True,
                      action="use_fallback" if line.fallback else "use_installed",
                      detail=f"'{chosen}' is installed and can stand in for {line.name}")


def _resolve_tool(line: Dependency) -> Resolution:
    base = {"name": line.name, "kind": line.kind, "status": line.status,
            "required": line.required}
    if line.source_type == "forge":
        return Resolution(**base, resolvable=False, action="cannot_install",
                          detail=f"a gateway (MCP) tool needs an MCP gateway; {NO_DOWNLOADS}")
    close = difflib.get_close_matches(line.name, sorted(dependency.builtin_tools()), n=3,
                                      cutoff=0.6)
    if close:
        return Resolution(**base, resolvable=True, action="use_installed", options=close,
                          detail=f"built-in tools with a similar name: {', '.join(close)}")
    return Resolution(**base, resolvable=False, action="cannot_install",
                      detail="this server has no built-in tool of that (or a similar) name")


def resolve(check: DependencyCheck, store: ModelStore) -> list[Resolution]:
    """For every dependency not available, what installed here would satisfy it."""
    found = []
    for line in _lines(check):
        if line.status == "available":
            continue
        if line.kind == "model":
            found.append(_resolve_model(line, store))
        elif line.kind == "tool":
            found.append(_resolve_tool(line))
        else:
            found.append(Resolution(
                name=line.name, kind=line.kind, status=line.status, required=line.required,
                resolvable=False, action="cannot_install",
                detail=f"{line.kind.replace('_', ' ')}s are installed from the network; "
                       f"{NO_DOWNLOADS}"))
    return found


# -- install ----------------------------------------------------------------------------

def satisfy(item: InstallItem, store: ModelStore) -> ItemResult:
    """Whether this server satisfies one item, and with what."""
    target = item.use or item.name
    base = {"kind": item.kind, "name": item.name}
    if item.kind == "model":
        found = dependency.find_model(store, target, ALL_MODEL_KINDS)
        if found is not None:
            return ItemResult(**base, status="satisfied", satisfied_by=found.id,
                              detail=f"installed model '{found.id}'")
        if item.use:
            return ItemResult(**base, status="not_found",
                              detail=f"no installed model is named '{item.use}'")
        return ItemResult(**base, status="cannot_install",
                          detail=f"model '{item.name}' is not installed and {NO_DOWNLOADS}; "
                                 "install it (`homepilot models install ...`) and retry")
    if item.kind == "tool":
        if target in dependency.builtin_tools():
            return ItemResult(**base, status="satisfied", satisfied_by=target,
                              detail="a built-in tool")
        if item.use:
            return ItemResult(**base, status="not_found",
                              detail=f"no built-in tool is named '{item.use}'")
        return ItemResult(**base, status="cannot_install",
                          detail=f"not a built-in tool (gateway tools need an MCP gateway); "
                                 f"{NO_DOWNLOADS}")
    return ItemResult(**base, status="cannot_install",
                      detail=f"{item.kind.replace('_', ' ')}s are installed from the "
                             f"network; {NO_DOWNLOADS}")


def items_from(check: DependencyCheck) -> list[tuple[InstallItem, bool]]:
    """The check's lines as items (a degraded model satisfied by its fallback), each
    with whether it is required."""
    return [(InstallItem(kind=line.kind, name=line.name[:300] or "?",
                         use=line.fallback if line.status == "degraded" else None),
             line.required) for line in _lines(check)]


def record(existing: Any, results: list[ItemResult]) -> dict[str, Any]:
    """``persona_dependencies``: the satisfied ones, merged over what was recorded."""
    now = time.time()
    kept = existing.get("satisfied") if isinstance(existing, dict) else None
    satisfied = {f"{e.get('kind')}:{e.get('name')}": e for e in kept or []
                 if isinstance(e, dict)}
    for result in results:
        if result.status == "satisfied":
            satisfied[f"{result.kind}:{result.name}"] = {
                "kind": result.kind, "name": result.name,
                "satisfied_by": result.satisfied_by, "recorded_at": now}
    return {"satisfied": [satisfied[k] for k in sorted(satisfied)], "updated_at": now}


def project_items(state: AppState, project: Project) -> list[InstallItem]:
    """The project's own dependencies (as an export would list them) as items."""
    deps = dependency.manifests(project.public(), state.model_store)
    return [item for item, _ in items_from(dependency.check(deps, state.model_store))]


def install_on(state: AppState, project: Project,
               items: list[InstallItem] | None) -> dict[str, Any]:
    """Record what of ``items`` (default: the project's own dependencies) this server
    satisfies. 409 and nothing recorded when none of them can be."""
    chosen = project_items(state, project) if items is None else items
    results = [satisfy(item, state.model_store) for item in chosen]
    if chosen and not any(r.status == "satisfied" for r in results):
        raise ApiError(409, "cannot_install", "None of these dependencies can be satisfied "
                       f"here ({NO_DOWNLOADS}); see results",
                       results=[r.model_dump() for r in results])
    kept = record(project.extra.get("persona_dependencies"), results)
    updated = state.projects.update(project.id, {"persona_dependencies": kept})
    if updated is None:
        raise ApiError(404, "not_found", f"Project '{project.id}' not found")
    return {"ok": True, "project_id": project.id,
            "results": [r.model_dump() for r in results],
            "all_satisfied": all(r.status == "satisfied" for r in results),
            "persona_dependencies": kept}


# -- atomic import ----------------------------------------------------------------------

def atomic_import(state: AppState, package: Package, auto_install_servers: bool,
                  force_reinstall: bool) -> dict[str, Any]:
    """Import with the dependencies resolved, as one operation: every check is made
    before anything is written, and the project row carries its dependency record, so
    either the persona exists with everything or nothing was written."""
    store = state.model_store
    check = dependency.check(package.dependencies, store)
    pairs = items_from(check)
    results = [satisfy(item, store) for item, _ in pairs]
    unmet = [r for r, (_, required) in zip(results, pairs, strict=True)
             if required and r.status != "satisfied"]
    if unmet:
        raise ApiError(409, "dependencies_unsatisfied",
                       "Required dependencies cannot be satisfied here: " + ", ".join(
                           f"{r.name} ({r.kind})" for r in unmet),
                       results=[r.model_dump() for r in results])
    servers = [r for r in results if r.kind in ("mcp_server", "a2a_agent")]
    if auto_install_servers and servers:
        names = ", ".join(r.name for r in servers)
        raise ApiError(409, "cannot_install",
                       f"The package needs MCP servers or A2A agents ({names}); "
                       f"{NO_DOWNLOADS}. Import with auto_install_servers=false to import "
                       "the persona without them", results=[r.model_dump() for r in results])
    kept = record({}, results)
    created = install(state, package, {"persona_dependencies": kept})
    return {"ok": True, "project": created.public(), "dependency_check": check.model_dump(),
            "results": [r.model_dump() for r in results],
            "skipped_servers": [r.name for r in servers],
            "auto_install_servers": auto_install_servers,
            "force_reinstall": force_reinstall}
