"""ComfyUI's web frontend (``comfyui-frontend-package``) served at ``/editor/``.

The page must never reach past this machine: a Content-Security-Policy like ComfyUI's
offline mode lets it load and connect only to this server (the bundle carries a Sentry
DSN, Firebase and a release feed on api.comfy.org). The one inline script of index.html
(the splash colours) is allowed by its hash, not by 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from server.errors import ApiError

BASE = "/editor"
_TYPES = {".js": "application/javascript; charset=utf-8",
          ".mjs": "application/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".json": "application/json",
          ".map": "application/json", ".svg": "image/svg+xml", ".woff2": "font/woff2",
          ".woff": "font/woff", ".ttf": "font/ttf", ".png": "image/png", ".ico": "image/x-icon",
          ".webp": "image/webp", ".jpg": "image/jpeg", ".gif": "image/gif",
          ".wasm": "application/wasm", ".html": "text/html; charset=utf-8",
          ".txt": "text/plain; charset=utf-8", ".mp3": "audio/mpeg", ".cur": "image/x-icon"}
# Code and data revalidate every load (a new package must not mix with cached chunks);
# pictures and fonts keep a day, as under ComfyUI. The build's chunks carry a content
# hash in their names (assets/GraphView-Bt0QZMwI.js): those never change, so a returning
# browser loads them without asking (about 280 requests fewer per load).
_REVALIDATE = {".js", ".mjs", ".css", ".json", ".html"}
_HASHED = re.compile(r"^assets/[^/]+-[A-Za-z0-9_-]{8}\.[a-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
NO_STORE = {"Cache-Control": "no-store, must-revalidate", "Pragma": "no-cache", "Expires": "0"}

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def static_root() -> Path:
    return Path(str(importlib.resources.files("comfyui_frontend_package") / "static")).resolve()


@lru_cache(maxsize=1)
def content_security_policy() -> str:
    index = (static_root() / "index.html").read_text(encoding="utf-8")
    hashes = []
    for body in re.findall(r"<script>(.*?)</script>", index, flags=re.S):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'wasm-unsafe-eval' {' '.join(hashes)}".strip(),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self' data: blob:",
        "worker-src 'self' blob:",
        "manifest-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'self'",
        "base-uri 'self'",
        "form-action 'self'",
    ])


def security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": content_security_policy(),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@router.get(BASE)
def editor_slash(request: Request) -> RedirectResponse:
    """The frontend routes relative to its own path: it needs the trailing slash."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{BASE}/{query}", status_code=308)


@router.get(BASE + "/")
def index() -> FileResponse:
    return FileResponse(static_root() / "index.html", media_type=_TYPES[".html"],
                        headers={**NO_STORE, **security_headers()})


@router.get(BASE + "/user.css")
def user_css() -> Response:
    """index.html links a server-wide user.css (ComfyUI's theming hook); none is set."""
    return Response("", media_type=_TYPES[".css"], headers={"Cache-Control": "no-cache"})


def static_file(root: Path, relative: str) -> FileResponse:
    """A file under ``root``, never outside it (``..``, absolute paths, symlinks out)."""
    try:
        path = (root / relative).resolve()
    except (OSError, ValueError):
        raise ApiError(404, "not_found", f"there is no file {relative!r}") from None
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", f"there is no file {relative!r}")
    suffix = path.suffix.lower()
    cache = "no-cache" if suffix in _REVALIDATE else "public, max-age=86400"
    if root == static_root() and _HASHED.match(relative):
        cache = IMMUTABLE
    return FileResponse(path, media_type=_TYPES.get(suffix, "application/octet-stream"),
                        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"})


def static_route(relative: str) -> FileResponse:
    return static_file(static_root(), relative)


# Registered last by ``server.editor.mount``: every /editor/api route comes first.
static_router = APIRouter(include_in_schema=False)
static_router.add_api_route(BASE + "/{relative:path}", static_route, methods=["GET", "HEAD"])


def root_asset(relative: str) -> FileResponse:
    """The frontend names its favicons from the site root (/assets/favicon.ico, and
    /assets/images/favicon_progress_16x16/... while a run goes), as ComfyUI serves it."""
    return static_file(static_root() / "assets", relative)


static_router.add_api_route("/assets/{relative:path}", root_asset, methods=["GET", "HEAD"])
