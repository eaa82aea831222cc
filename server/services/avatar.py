"""Persona avatars: where the source picture comes from, the project's own copy, and its
256×256 WebP thumbnail.

A persona keeps its avatar in its own folder of the file store
(``projects/<id>/persona/appearance/``) so that it survives the clean-up of the picture
it was chosen from. Sources are only ever read from this server's own folders: a URL
names a local ``/files/...`` path or a ComfyUI-style view of the output/input folders
(``/view?filename=...``, ``/comfy/view/<f>``) and is never fetched.
"""

from __future__ import annotations

import io
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import EngineError
from engine.files import write_atomic
from server.errors import ApiError
from server.routers.uploads import image_suffix
from server.state import AppState

THUMB_SIZE = 256
# Decoding a picture costs 4 bytes a pixel: a tiny PNG can claim 50 000 × 50 000.
MAX_PIXELS = 40_000_000
APPEARANCE = ("persona", "appearance")
COMFY_VIEW = "/comfy/view"
VIEW_PATHS = ("/view", "/api/view", COMFY_VIEW, "/editor/api/view")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def appearance_folder(state: AppState, project_id: str) -> Path:
    return state.files.root.joinpath("projects", project_id, *APPEARANCE)


def relative(state: AppState, path: Path) -> str:
    """A path in the file store as the persona records it (``projects/<id>/...``)."""
    return path.relative_to(state.files.root).as_posix()


def checked_image(data: bytes, what: str) -> str:
    """The stored suffix of a picture (``.png``, ``.jpg``, ``.gif``, ``.webp``) after
    checking that its bytes are one and decode within the pixel cap; 400 otherwise."""
    suffix = image_suffix(data[:16])
    if suffix is None:
        raise ApiError(400, "not_an_image", f"{what} is not a PNG, JPEG, GIF or WebP picture")
    try:
        # Pillow's own bomb check fires at 179M pixels; ours below is stricter.
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ApiError(400, "image_too_large",
                               f"{what} is {image.width}×{image.height} pixels; at most "
                               f"{MAX_PIXELS:,} pixels are accepted")
            image.verify()
    except Image.DecompressionBombError as exc:
        raise ApiError(400, "image_too_large", f"{what}: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(400, "not_an_image", f"{what} is not a readable picture: {exc}") from exc
    return suffix


def thumbnail(data: bytes) -> bytes:
    """A 256×256 WebP of the picture's centre square (EXIF orientation applied first, so
    phone photos are not sideways)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            upright = ImageOps.exif_transpose(image)
            alpha = "A" in upright.getbands() or "transparency" in upright.info
            square = ImageOps.fit(upright.convert("RGBA" if alpha else "RGB"),
                                  (THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS,
                                  centering=(0.5, 0.5))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # verify() passes some damaged pictures (a truncated JPEG) that decoding refuses
        raise ApiError(400, "not_an_image", f"the picture cannot be decoded: {exc}") from exc
    out = io.BytesIO()
    square.save(out, format="WEBP", quality=85, method=4)
    return out.getvalue()


def safe_stem(name: str) -> str:
    """A file name's stem reduced to letters, digits, '.', '_' and '-' (at most 80)."""
    stem = _UNSAFE.sub("_", PurePosixPath(name).stem).strip("._") or "image"
    return stem[:80]


# -- where a source picture is ---------------------------------------------------------

def store_path(state: AppState, name: str) -> Path | None:
    """A file of the store named by its id (``f_<hex>.png``) or by its path relative to
    the store's root (``projects/<id>/persona/appearance/x.png``); None when the name
    could reach outside the store or through a link."""
    if not name or "\x00" in name or "\\" in name or len(name) > 512:
        return None
    if "/" not in name:
        try:
            return state.files.path(name)
        except EngineError:
            pass
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or any(p in ("..", ".", "")
                                                           for p in parts):
        return None
    root = state.files.root.resolve()
    path = state.files.root.joinpath(*parts)
    # No component may be a link: a link inside the store could point anywhere.
    try:
        probe = state.files.root
        for part in parts:
            probe = probe / part
            if probe.is_symlink():
                return None
        if not path.resolve().is_relative_to(root):
            return None
    except (OSError, RuntimeError, ValueError):  # a loop; a name the OS cannot encode
        return None
    return path


def url_source(state: AppState, url: str, own_hosts: set[str]) -> tuple[Path | None, str]:
    """The local file a ``/files/...`` or view URL names, and the name to report.
    Absolute URLs are accepted only for this server's own host; anything else is a 400,
    never a download."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # "Invalid IPv6 URL" and the like
        raise ApiError(400, "bad_url", f"Not a URL: {url!r}") from exc
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or parts.netloc.lower() not in own_hosts:
            raise ApiError(400, "bad_url_host",
                           f"Only this server's own picture URLs can be committed, not {url!r}")
    if parts.path.startswith("/files/"):
        name = unquote(parts.path[len("/files/"):])
        return store_path(state, name), name
    viewed = _view_source(state, parts)
    if viewed is None:
        raise ApiError(400, "bad_url", "Not a /files/..., /view?filename=... or "
                       f"/comfy/view/... URL: {url!r}")
    return viewed


def _view_source(state: AppState, parts: SplitResult) -> tuple[Path | None, str] | None:
    """A ComfyUI-style view URL (``/view``, ``/api/view``, ``/comfy/view`` with
    ``filename``/``subfolder``/``type``, or ``/comfy/view/<sub>/<file>``) as the file the
    editor's ``/view`` serves for it; None when the path is no view URL."""
    from server.editor.media import located  # the editor's own rule for these folders

    query = dict(parse_qsl(parts.query))
    subfolder = query.get("subfolder", "")
    if parts.path.startswith(COMFY_VIEW + "/"):
        subfolder, _, filename = unquote(parts.path[len(COMFY_VIEW) + 1:]).rpartition("/")
    elif parts.path.rstrip("/") in VIEW_PATHS:
        filename = query.get("filename", "")
    else:
        return None
    if not filename:
        raise ApiError(400, "bad_url", "The view URL names no filename")
    try:
        path = located(state, filename, subfolder, query.get("type", "output"))
        # A name the OS refuses (too long, a NUL) is no file of ours, not a failure.
        found = path if path.is_file() and not path.is_symlink() else None
    except (OSError, ValueError) as exc:
        raise ApiError(400, "bad_url", f"The view URL names no usable file: {exc}") from exc
    return found, filename


def local_picture(state: AppState, url: Any, own_hosts: set[str]) -> tuple[Path, str] | None:
    """Best effort: the local file a picture URL names, or None for anything that is not
    one of this server's existing files (another host, a bad or missing name)."""
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        path, name = url_source(state, url, own_hosts)
    except ApiError:
        return None
    if path is None or path.is_symlink() or not path.is_file():
        return None
    return path, name


def selected_url(appearance: dict[str, Any]) -> str:
    """The URL of the picture ``persona_appearance.selected`` points at, found in
    ``sets[]`` (by set_id and image id) or ``outfits[]`` (by outfit id and image id)."""
    selected = appearance.get("selected")
    if not isinstance(selected, dict) or not selected.get("image_id"):
        raise ApiError(400, "nothing_selected",
                       "persona_appearance.selected {set_id, image_id} is not set")
    set_id, image_id = selected.get("set_id"), selected["image_id"]
    groups = [(s.get("set_id"), s) for s in _dicts(appearance.get("sets"))]
    groups += [(o.get("id"), o) for o in _dicts(appearance.get("outfits"))]
    for group_id, group in groups:
        if set_id and group_id != set_id:
            continue
        for image in _dicts(group.get("images")):
            if image.get("id") == image_id and isinstance(image.get("url"), str):
                return image["url"]
    raise ApiError(404, "source_not_found",
                   f"Source image not found: selected image {image_id!r} of set {set_id!r}")


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# -- committing ------------------------------------------------------------------------

def commit(state: AppState, project_id: str, source: Path, name: str) -> dict[str, str]:
    """Copy ``source`` into the persona's folder as ``avatar_<stem>.<ext>`` beside a
    ``thumb_avatar_<stem>.webp``; returns the two store-relative paths. An earlier avatar
    of the same name but other bytes is kept (the new one gets ``<stem>_2``...): it is a
    version the persona can go back to."""
    if not source.is_file():
        raise ApiError(404, "source_not_found", f"Source image not found: {name}")
    data = source.read_bytes()
    suffix = checked_image(data, f"Source image {name}")
    folder = appearance_folder(state, project_id)
    stem = free_stem(folder, safe_stem(name), suffix, data)
    avatar, thumb = folder / f"avatar_{stem}{suffix}", folder / f"thumb_avatar_{stem}.webp"
    small = thumbnail(data)
    # Thumbnail first: a persona never points at an avatar whose thumbnail is missing.
    write_atomic(thumb, small)
    write_atomic(avatar, data)
    return {"selected_filename": relative(state, avatar),
            "selected_thumb_filename": relative(state, thumb)}


def free_stem(folder: Path, stem: str, suffix: str, data: bytes) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... : the first whose avatar file is absent or
    holds exactly ``data`` (committing the same picture twice reuses its file)."""
    candidate, number = stem, 1
    while True:
        existing = folder / f"avatar_{candidate}{suffix}"
        if not existing.exists() or (existing.is_file() and existing.read_bytes() == data):
            return candidate
        number += 1
        candidate = f"{stem[:76]}_{number}"
