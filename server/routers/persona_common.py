"""What the persona routers share: finding a persona project, and the host names this
server answers to (a picture URL on one of them is a local file, never a download)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from server.errors import ApiError
from server.state import AppState
from server.storage.projects import Project


def persona_project(state: AppState, project_id: str) -> Project:
    """The project, which must be a persona: 404 when absent, 400 when another kind."""
    found = state.projects.get(project_id)
    if found is None:
        raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    if found.project_type != "persona":
        raise ApiError(400, "not_persona", "Not a persona project")
    return found


def own_hosts(request: Request, state: AppState) -> set[str]:
    """The host names this server answers to: the request's own and the public base."""
    hosts = {request.url.netloc.lower()}
    if request.headers.get("host"):
        hosts.add(request.headers["host"].lower())
    if state.settings.public_base_url:
        hosts.add(urlsplit(state.settings.public_base_url).netloc.lower())
    return hosts
