"""What the editor asks for while it boots: users, settings, features, i18n, subgraphs.

Shapes and failure rules are those of COMFY-FRONTEND.md: ``/api/settings`` failing (or
answering 401) stops the editor for good, so it always answers JSON.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse

from server.deps import State
from server.errors import ApiError
from server.serialize import read_json

API = "/editor/api"
INTERNAL = "/editor/internal"
_USER = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SETTING = re.compile(r"^[\w.\-:/ ]{1,200}$")
# The server's side of the WebSocket feature negotiation (also sent by GET /features).
FEATURE_FLAGS: dict[str, Any] = {"supports_preview_metadata": False,
                                 "max_upload_size": 25 * 1024**2}

# What a new user starts with. Release notes come from api.comfy.org, which the page's
# Content-Security-Policy blocks anyway (it would only log the refusal); the editor asks
# for them before it has read system_stats' --disable-api-nodes, so the setting is off.
DEFAULT_SETTINGS: dict[str, Any] = {"Comfy.Notification.ShowVersionUpdates": False}

router = APIRouter(tags=["editor"])


def user_of(comfy_user: str | None) -> str:
    """The frontend sends ``Comfy-User`` (empty with a single user)."""
    if not comfy_user:
        return "default"
    if not _USER.match(comfy_user):
        raise ApiError(400, "invalid_user", "Comfy-User must be 1-64 letters, digits, '_' "
                                            "or '-'")
    return comfy_user


User = Annotated[str | None, Header(alias="Comfy-User", include_in_schema=False)]
SettingId = Annotated[str, Path(pattern=_SETTING.pattern, description="a setting id")]


@router.get(API + "/users")
def users() -> dict[str, Any]:
    # No "users" key: a single-user server, so the frontend shows no login screen.
    return {"storage": "server", "migrated": True}


@router.get(API + "/features")
def features(state: State) -> dict[str, Any]:
    return {**FEATURE_FLAGS, "max_upload_size": state.settings.max_upload_mb * 1024**2}


@router.get(API + "/i18n")
def i18n() -> dict[str, Any]:
    """Custom-node translations; HomePilot's nodes carry none."""
    return {}


@router.get(API + "/workflow_templates")
def workflow_templates() -> dict[str, list[str]]:
    """Templates of custom node packs, by pack; packs here ship none."""
    return {}


@router.get("/editor/templates/{name}", include_in_schema=False)
def template_index(name: str) -> list[Any]:
    """The template browser's index files: HomePilot's graphs are in the workflows
    sidebar instead (ComfyUI's templates use core nodes HomePilot does not have)."""
    if name.startswith("index") and name.endswith(".json"):
        return []
    raise ApiError(404, "not_found", f"there is no template {name!r}")


@router.get(API + "/global_subgraphs")
def global_subgraphs() -> dict[str, Any]:
    return {}


@router.get(API + "/experiment/models")
def model_folders(state: State) -> list[dict[str, Any]]:
    """The model library's folders: one per installed kind."""
    kinds = sorted({m.kind for m in state.model_store.list()})
    return [{"name": kind, "folders": [str(state.settings.models_dir)]} for kind in kinds]


@router.get(API + "/experiment/models/{folder}")
def models_in(folder: str, state: State) -> list[dict[str, Any]]:
    return [{"name": m.id, "pathIndex": 0} for m in state.model_store.list() if m.kind == folder]


@router.post(API + "/free")
def free() -> dict[str, Any]:
    """ComfyUI's "unload models": model hosts evict themselves under their memory budget."""
    return {}


@router.get(API + "/settings")
def all_settings(state: State, comfy_user: User = None) -> dict[str, Any]:
    return {**DEFAULT_SETTINGS, **state.editor_settings.all(user_of(comfy_user))}


@router.get(API + "/settings/{setting_id}")
def one_setting(setting_id: SettingId, state: State, comfy_user: User = None) -> Any:
    return JSONResponse(state.editor_settings.get(user_of(comfy_user), setting_id))


@router.post(API + "/settings")
async def set_settings(request: Request, state: State, comfy_user: User = None) -> dict[str, Any]:
    user = user_of(comfy_user)
    values = await read_json(request)
    if not isinstance(values, dict) or not all(_SETTING.match(k) for k in values):
        raise ApiError(400, "invalid_settings", "send an object of setting ids to values")
    state.editor_settings.update(user, values)
    return {}


@router.post(API + "/settings/{setting_id}")
async def set_setting(setting_id: SettingId, request: Request, state: State,
                      comfy_user: User = None) -> dict[str, Any]:
    """The body is the value; an empty body (the frontend storing ``undefined``) deletes."""
    user = user_of(comfy_user)
    # None (an empty body, or null) deletes, as ComfyUI's settings do.
    state.editor_settings.update(user, {setting_id: await read_json(request)})
    return {}


@router.get(INTERNAL + "/files/input")
def input_files(state: State) -> list[str]:
    folder = state.settings.input_dir
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@router.get(INTERNAL + "/folder_paths")
def folder_paths(state: State) -> dict[str, Any]:
    kinds = sorted({m.kind for m in state.model_store.list()})
    return {kind: [[str(state.settings.models_dir)], []] for kind in kinds}


@router.get(INTERNAL + "/logs")
def logs() -> dict[str, Any]:
    return {"entries": [], "size": {"cols": 80, "rows": 24}}
