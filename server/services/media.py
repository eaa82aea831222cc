"""Source pictures named in requests: a ``/files/...`` URL, an upload id or an http(s) URL,
resolved to a file of our store before any graph runs, so bad input is refused up front.

Remote URLs go through ``engine.fetch`` (no private or loopback addresses unless the
allow-list says so). A fetched picture is decoded and checked first, and stored only when
the request using it has passed its own checks (``Source.keep``): nothing is written for
a refused one.
"""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image

from engine.errors import EngineError
from engine.fetch import FetchError, fetch
from engine.pictures import FORMATS, NAMES, decode_errors
from server.errors import ApiError
from server.routers.uploads import image_suffix
from server.state import AppState

MAX_SIDE = 4096  # input and output edge cap, as HomePilot's enhancement API has
_FILE_ID = re.compile(r"f_[0-9a-f]{20}(\.[a-z0-9]{1,8})?")
_FILES_PATH = re.compile(r"^/files/(f_[0-9a-f]{20}(?:\.[a-z0-9]{1,8})?)$")


_DECODE_ERRORS = decode_errors()


def image_size(data: bytes, what: str = "the image") -> tuple[int, int]:
    """(width, height) of a picture that decodes in full within the edge cap, else 400."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
            size = opened.size
            if max(size) > MAX_SIDE:
                raise ApiError(400, "image_too_large", f"{what} is {size[0]}x{size[1]}; the "
                               f"largest side allowed is {MAX_SIDE} px")
            opened.load()  # header checks pass truncated and corrupt files
    except _DECODE_ERRORS as exc:
        raise ApiError(400, "not_an_image", f"{what} is not a picture that can be read "
                       f"({NAMES})") from exc
    return size


def as_png(data: bytes) -> bytes:
    """The picture re-encoded as PNG (RGB, or RGBA where it has transparency)."""
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
        opened.load()
        transparent = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
        opened.convert("RGBA" if transparent else "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Source:
    """A checked source picture: already in the store (``file_id``) or fetched and not
    yet stored (``data``), so that a request refused later leaves nothing behind."""

    size: tuple[int, int]
    file_id: str | None = None
    data: bytes | None = None
    suffix: str = ".png"

    async def keep(self, state: AppState) -> str:
        """The store id, storing a fetched picture first (once)."""
        if self.file_id is None:
            assert self.data is not None
            self.file_id = await asyncio.to_thread(state.files.save, self.data, self.suffix)
        return self.file_id


def local_id(state: AppState, source: str, own_hosts: set[str]) -> str | None:
    """The store id ``source`` names, or None when it names something elsewhere."""
    if _FILE_ID.fullmatch(source):
        return source
    parts = urlsplit(source)
    match = _FILES_PATH.match(parts.path)
    if match is None:
        return None
    if not parts.scheme or (parts.hostname or "").lower() in own_hosts:
        return match.group(1)
    return None


def own_hosts(state: AppState, request_host: str | None) -> set[str]:
    hosts = {h for h in (request_host, urlsplit(state.settings.public_base_url).hostname) if h}
    return {h.lower() for h in hosts}


def _check_local(state: AppState, file_id: str) -> Source:
    try:
        data = state.files.read(file_id)
    except EngineError as exc:
        raise ApiError(404, "image_not_found", f"Image not found on server: {file_id}") \
            from exc
    return Source(size=image_size(data, f"file {file_id}"), file_id=file_id)


async def load_source(state: AppState, source: str, request_host: str | None) -> Source:
    """The picture ``source`` names (a /files/ URL, an upload id or an http(s) URL),
    fetched and checked; nothing is stored yet (``Source.keep`` does that)."""
    source = source.strip()
    if not source:
        raise ApiError(400, "image_required", "image_url is required")
    local = local_id(state, source, own_hosts(state, request_host))
    if local is not None:
        return await asyncio.to_thread(_check_local, state, local)
    if urlsplit(source).scheme not in ("http", "https"):
        raise ApiError(400, "invalid_image_url", "give the picture as /files/<id>, an upload "
                       f"id or an http(s) URL (got {source[:80]!r})")
    settings = state.settings
    try:
        data = await asyncio.to_thread(fetch, source, settings.fetch_allow_list(),
                                       settings.max_upload_mb * 1024**2,
                                       settings.fetch_timeout)
    except FetchError as exc:
        raise ApiError(400, exc.code, str(exc)) from exc
    size = await asyncio.to_thread(image_size, data, source[:120])
    suffix = image_suffix(data[:16])
    if suffix is None:  # a format we do not serve as is (BMP, TIFF, ...): stored as PNG
        data, suffix = await asyncio.to_thread(as_png, data), ".png"
    return Source(size=size, data=data, suffix=suffix)


async def resolve_image(state: AppState, source: str, request_host: str | None) -> str:
    """The store id of the picture ``source`` names, storing a fetched one."""
    return await (await load_source(state, source, request_host)).keep(state)


def file_url(file_id: str) -> str:
    return f"/files/{file_id}"
