"""``/api/view`` and ``/api/upload/image|mask``: pictures in and out of the editor.

Our nodes show stored files as ``{"filename": <file id>, "subfolder": "", "type":
"output"}``, so ``type=output`` reads the file store's folder, where ComfyUI's SaveImage
also writes its named files (in subfolders too); ``type=temp`` reads
``$HOMEPILOT_HOME/temp`` (PreviewImage); ``type=input`` reads the input folder, where
uploads go and from which ``image.Load`` lists its choices.
"""

from __future__ import annotations

import asyncio
import io
import json
import mimetypes
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from engine.files import write_atomic
from engine.pictures import NAMES, decode_errors, open_picture
from server.deps import State
from server.editor.boot import API
from server.errors import ApiError
from server.routers.uploads import read_capped
from server.state import AppState

router = APIRouter(tags=["editor"])
_NAME = re.compile(r"^[^/\\\x00]{1,200}$")
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp",
           "TIFF": ".tiff"}


class UploadedImage(BaseModel):
    name: str
    subfolder: str
    type: str


def _subfolder(value: str) -> str:
    value = value.strip().strip("/")
    if value and any(p in ("", ".", "..") for p in value.replace("\\", "/").split("/")):
        raise ApiError(400, "invalid_subfolder", f"{value!r} is not a folder name")
    return value


def _inside(root: Path, subfolder: str, name: str) -> Path:
    if not _NAME.match(name) or name in (".", ".."):
        raise ApiError(400, "invalid_filename", f"{name[:100]!r} is not a file name")
    path = (root / _subfolder(subfolder) / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ApiError(400, "invalid_filename", "the file is outside the folder")
    return path


def located(state: AppState, filename: str, subfolder: str, kind: str) -> Path:
    if kind == "input":
        return _inside(state.settings.input_dir, subfolder, filename)
    if kind == "output":  # the store's ids and ComfyUI's SaveImage names (sub/x_00001_.png)
        return _inside(state.files.root, subfolder, filename)
    if kind == "temp":  # PreviewImage's pictures, where folder_paths puts the temp folder
        return _inside(state.settings.home / "temp", subfolder, filename)
    raise ApiError(400, "invalid_type", "type must be output, input or temp")


@router.get(API + "/view", response_model=None, response_class=Response, responses={
    200: {"content": {t: {} for t in ("image/png", "image/jpeg", "image/webp", "image/gif",
                                      "video/mp4", "audio/wav", "application/octet-stream")},
          "description": "the file"}})
def view(state: State, filename: str = Query(..., max_length=200), subfolder: str = "",
         type: str = "output", channel: str | None = None,  # noqa: A002 (ComfyUI's name)
         preview: str | None = None) -> Response:
    """A stored or uploaded file. ``channel=a|rgb`` splits a picture as the mask editor
    asks; ``preview`` (a re-encoding hint) is answered with the original."""
    path = located(state, filename, subfolder, type)
    if not path.is_file():
        raise ApiError(404, "file_not_found", f"there is no file {filename!r}")
    if channel in ("a", "rgb"):
        return _channel(path, channel)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})


def _channel(path: Path, channel: str) -> Response:
    try:
        picture = open_picture(path.read_bytes())
    except decode_errors() as exc:
        raise ApiError(415, "not_a_picture", f"{path.name} is not a {NAMES} picture") from exc
    rgba = picture.convert("RGBA")
    if channel == "rgb":
        out = rgba.convert("RGB")
    else:  # the alpha as a black picture with that alpha, as ComfyUI serves it
        from PIL import Image

        out = Image.new("RGBA", rgba.size, (0, 0, 0, 0))
        out.putalpha(rgba.getchannel("A"))
    buffer = io.BytesIO()
    out.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")


def _free_name(folder: Path, name: str, overwrite: bool) -> Path:
    """ComfyUI's rule: an existing name gets " (1)", " (2)"... unless overwriting."""
    path = folder / name
    if overwrite or not path.exists():
        return path
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 1
    while (folder / f"{stem} ({number}){suffix}").exists():
        number += 1
    return folder / f"{stem} ({number}){suffix}"


def _save_input(state: AppState, data: bytes, name: str, subfolder: str,
                overwrite: bool) -> UploadedImage:
    try:
        picture = open_picture(data)
    except decode_errors() as exc:
        raise ApiError(415, "unsupported_media_type", f"upload a {NAMES} picture") from exc
    name = Path(name.replace("\\", "/")).name or f"upload{_SUFFIX[picture.format or 'PNG']}"
    if Path(name).suffix.lower() not in {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp",
                                         ".tif", ".tiff"}:
        name += _SUFFIX.get(picture.format or "PNG", ".png")
    target = _inside(state.settings.input_dir, subfolder, name)
    target = _free_name(target.parent, target.name, overwrite)
    write_atomic(target, data)
    return UploadedImage(name=target.name, subfolder=_subfolder(subfolder), type="input")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@router.post(API + "/upload/image", response_model=UploadedImage)
async def upload_image(state: State, image: UploadFile, type: str = Form("input"),  # noqa: A002
                       subfolder: str = Form(""), overwrite: str = Form("")) -> UploadedImage:
    if type != "input":
        raise ApiError(400, "invalid_type", "pictures are uploaded to the input folder "
                       "(type=input)")
    data = await read_capped(image, state.settings.max_upload_mb)
    return await asyncio.to_thread(_save_input, state, data, image.filename or "",
                                   subfolder, _flag(overwrite))


@router.post(API + "/upload/mask", response_model=UploadedImage)
async def upload_mask(state: State, image: UploadFile, original_ref: str = Form(...),
                      type: str = Form("input"), subfolder: str = Form(""),  # noqa: A002
                      overwrite: str = Form("")) -> UploadedImage:
    """The mask editor's result: the original picture with the painted alpha."""
    try:
        ref: Any = json.loads(original_ref)
    except ValueError as exc:
        raise ApiError(400, "invalid_original_ref", "original_ref must be JSON") from exc
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        raise ApiError(400, "invalid_original_ref", "original_ref needs a filename")
    source = located(state, ref["filename"], str(ref.get("subfolder") or ""),
                     str(ref.get("type") or "input"))
    if not source.is_file():
        raise ApiError(404, "file_not_found", f"there is no file {ref['filename']!r}")
    data = await read_capped(image, state.settings.max_upload_mb)

    def combine() -> UploadedImage:
        try:
            original = open_picture(source.read_bytes()).convert("RGBA")
            mask = open_picture(data).convert("RGBA")
        except decode_errors() as exc:
            raise ApiError(415, "unsupported_media_type", f"upload a {NAMES} mask") from exc
        original.putalpha(mask.getchannel("A").resize(original.size))
        buffer = io.BytesIO()
        original.save(buffer, format="PNG")
        name = Path(image.filename or "mask.png").stem + ".png"
        return _save_input(state, buffer.getvalue(), name, subfolder, _flag(overwrite))

    return await asyncio.to_thread(combine)
