"""The visual editor: ComfyUI's web frontend at ``/editor/`` over our engine.

Everything the frontend calls lives under its base path (``/editor/api/...``,
``/editor/ws``, ``/editor/internal/...``), away from HomePilot's own root routes (our
``GET /settings`` and ``GET /models`` mean other things). ComfyUI's prompt, queue,
history, interrupt, object_info and system_stats routes are the ones of
``server.routers.comfy``, mounted a second time under the editor's base; ComfyUI API
clients also find them under ``/api``, as ComfyUI serves them.
"""

from __future__ import annotations

from fastapi import FastAPI

from server import errors
from server.editor import boot, extensions, frontend, jobs, login, media, userdata
from server.routers import comfy


def mount(app: FastAPI) -> None:
    for module in (login, boot, userdata, jobs, media, extensions):
        app.include_router(module.router, responses=errors.RESPONSES)
    app.include_router(comfy.router, prefix=boot.API, include_in_schema=False)
    app.include_router(comfy.router, prefix="/api", include_in_schema=False)
    # ComfyUI API clients fetch their pictures at /view (and /api/view), as ComfyUI
    # serves them: the editor's view, at those paths too.
    for path in ("/view", "/api/view"):
        app.add_api_route(path, media.view, methods=["GET"], response_model=None,
                          include_in_schema=path == "/view", responses=errors.RESPONSES)
    app.add_api_websocket_route(frontend.BASE + "/ws", comfy.socket)
    app.include_router(extensions.files_router)
    app.include_router(frontend.router)
    # Last: the static catch-all under /editor/ must not shadow any route above.
    app.include_router(frontend.static_router)
