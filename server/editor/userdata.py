"""``/api/userdata``: the editor's per-user files (workflows, bookmarks, keybindings...).

Files live under ``$HOMEPILOT_HOME/user/<user>/``. The ``workflows`` folder is also where
HomePilot graphs meet the editor (``server.services.workflows``): the shipped graphs show
as a read-only ``HomePilot`` folder, user graphs as workflows, and saving a workflow also
writes it as a YAML graph.

The frontend encodes paths with ``encodeURIComponent`` (``workflows%2Fa.json``); the
server decodes ``%2F`` before routing, so file routes take a ``path`` parameter, and
``.../{src}/move/{dst}`` is split on the raw path, where the slashes are still encoded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from engine.files import write_atomic
from server.deps import State
from server.editor.boot import API, User, user_of
from server.errors import ApiError
from server.services.workflows import Workflows, file_info

router = APIRouter(tags=["editor"])
MAX_FILE = 50 * 1024**2
# Files the editor reads at every boot, as they are before the user saves any: the theme
# index.html links, the node templates ("Save selected as template") and the workflow
# bookmarks.
DEFAULTS = {"user.css": ("", "text/css"), "comfy.templates.json": ("[]", "application/json"),
            "workflows/.index.json": ('{"favorites": []}', "application/json")}


def user_root(state: Any, user: str) -> Path:
    return state.settings.user_dir / user


def safe_relative(relative: str) -> str:
    """A path inside a user's folder: no absolute paths, no ``..``, no empty parts."""
    relative = relative.replace("\\", "/")
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts) \
            or "\x00" in relative or len(relative) > 512:
        raise ApiError(400, "invalid_path", f"{relative[:100]!r} is not a file path inside "
                                            "the user folder")
    return relative


@router.get(API + "/userdata")
def list_userdata(state: State, dir: str = Query(..., description="a folder of the user's"),  # noqa: A002
                  recurse: bool = False, split: bool = False, full_info: bool = False,
                  comfy_user: User = None) -> Any:
    user = user_of(comfy_user)
    folder_name = safe_relative(dir.strip("/"))
    folder = user_root(state, user) / folder_name
    entries: dict[str, dict[str, Any]] = {}
    if folder.is_dir():
        walker = folder.rglob("*") if recurse else folder.glob("*")
        for path in walker:
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(folder).as_posix()
                entries[relative] = file_info(relative, path)
    if folder_name == "workflows":
        for relative, info in Workflows(state, user).listing().items():
            if recurse or "/" not in relative:
                entries.setdefault(relative, info)
    # ComfyUI answers 404 for a folder not made yet; the frontend reads that as empty, but
    # the browser logs every 404 as an error, so an empty list it is.
    ordered = sorted(entries)
    if full_info:
        return [entries[r] for r in ordered]
    if split:
        return [[r, *r.split("/")] for r in ordered]
    return ordered


# A user file comes back as stored: workflows and settings files are JSON, the theme CSS,
# anything else raw bytes.
FILE_TYPES = {200: {"content": {"application/json": {}, "text/css": {},
                                "application/octet-stream": {}},
                    "description": "the file's bytes"}}


@router.get(API + "/userdata/{file:path}", response_class=Response, responses=FILE_TYPES)
def get_userdata(file: str, state: State, comfy_user: User = None) -> Response:
    user = user_of(comfy_user)
    relative = safe_relative(file)
    generated = Workflows(state, user).read(relative)
    if generated is not None:
        return Response(generated, media_type="application/json",
                        headers={"Cache-Control": "no-cache"})
    path = user_root(state, user) / relative
    if not path.is_file():
        if relative in DEFAULTS:  # asked for at every boot: absent means empty
            body, media = DEFAULTS[relative]
            return Response(body, media_type=media)
        raise ApiError(404, "not_found", f"there is no user file {relative!r}")
    media = "application/json" if path.suffix == ".json" else "application/octet-stream"
    if path.suffix == ".css":
        media = "text/css"
    return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "no-cache"})


def _saved(relative: str, path: Path, full_info: bool) -> Any:
    return file_info(relative, path) if full_info else relative


def _move_parts(request: Request) -> tuple[str, str] | None:
    raw = request.scope.get("raw_path", b"").decode("latin-1")
    marker = "/userdata/"
    rest = raw.split(marker, 1)[1] if marker in raw else ""
    rest = rest.split("?", 1)[0]
    if "/move/" not in rest:
        return None
    source, target = rest.split("/move/", 1)
    return unquote(source), unquote(target)


@router.post(API + "/userdata/{file:path}")
async def post_userdata(file: str, request: Request, state: State, overwrite: bool = True,
                        full_info: bool = False, comfy_user: User = None) -> Any:
    user = user_of(comfy_user)
    workflows = Workflows(state, user)
    moved = _move_parts(request)
    if moved is not None:
        return _move(state, user, workflows, *moved, overwrite=overwrite, full_info=full_info)
    relative = safe_relative(file)
    workflows.check_writable(relative)
    data = await request.body()
    if len(data) > MAX_FILE:
        raise ApiError(413, "too_large", f"user files are limited to {MAX_FILE // 1024**2} MB")
    path = user_root(state, user) / relative
    if path.exists() and not overwrite:
        raise ApiError(409, "file_exists", f"{relative!r} exists; save with overwrite=true")
    if path.is_dir():
        raise ApiError(409, "is_a_folder", f"{relative!r} is a folder")
    warning = workflows.saved(relative, data)
    write_atomic(path, data)
    response = JSONResponse(_saved(relative, path, full_info))
    if warning:
        response.headers["X-HomePilot-Graph"] = warning[:300].encode("ascii", "replace").decode()
    return response


def _move(state: Any, user: str, workflows: Workflows, source: str, target: str, *,
          overwrite: bool, full_info: bool) -> Any:
    source, target = safe_relative(source), safe_relative(target)
    workflows.check_writable(source)
    workflows.check_writable(target)
    root = user_root(state, user)
    src, dst = root / source, root / target
    if not src.is_file():
        raise ApiError(404, "not_found", f"there is no user file {source!r}")
    if dst.exists() and not overwrite:
        raise ApiError(409, "file_exists", f"{target!r} exists; move with overwrite=true")
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    workflows.moved(source, target, dst.read_bytes())
    return _saved(target, dst, full_info)


@router.delete(API + "/userdata/{file:path}", status_code=204)
def delete_userdata(file: str, state: State, comfy_user: User = None) -> Response:
    user = user_of(comfy_user)
    relative = safe_relative(file)
    workflows = Workflows(state, user)
    workflows.check_writable(relative)
    path = user_root(state, user) / relative
    graph_removed = workflows.deleted(relative)
    if not path.is_file() and not graph_removed:
        raise ApiError(404, "not_found", f"there is no user file {relative!r}")
    path.unlink(missing_ok=True)
    return Response(status_code=204)
