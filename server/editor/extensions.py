"""Frontend extensions: HomePilot's own and the JS of custom node packs (``WEB_DIRECTORY``).

``GET /api/extensions`` must answer a JSON array of strings (the frontend parses it with
zod and stops booting otherwise). Each URL is loaded as ``<editor base>/extensions/...``;
packs' files are also served at the root ``/extensions/<pack>/``, as under ComfyUI.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.deps import State
from server.editor.boot import API
from server.editor.frontend import BASE, static_file, static_root
from server.state import AppState

OWN = "homepilot"
OWN_DIR = (Path(__file__).parent / "web").resolve()

router = APIRouter(tags=["editor"])


def web_directories(state: AppState) -> dict[str, Path]:
    """Extension name -> folder; ours first, packs after (a pack named like ours is not
    served: built-ins cannot be overridden)."""
    folders = {OWN: OWN_DIR}
    for pack in state.registry.packs:
        if pack.ok and pack.web_directory and pack.name not in folders:
            folder = Path(pack.web_directory)
            if folder.is_dir():
                folders[pack.name] = folder.resolve()
    return folders


@router.get(API + "/extensions")
def extensions(state: State) -> list[str]:
    urls = []
    for name, folder in web_directories(state).items():
        for script in sorted(folder.rglob("*.js")):
            urls.append(f"/extensions/{name}/{script.relative_to(folder).as_posix()}")
    return urls


def extension_file(name: str, relative: str, state: State) -> FileResponse:
    folder = web_directories(state).get(name)
    if folder is None:
        # The frontend's own shims (extensions/core/*.js) that packs import.
        return static_file(static_root() / "extensions" / name, relative)
    return static_file(folder, relative)


files_router = APIRouter(include_in_schema=False)
for prefix in (BASE, ""):
    files_router.add_api_route(prefix + "/extensions/{name}/{relative:path}", extension_file,
                               methods=["GET", "HEAD"])
