"""A project's knowledge base over HTTP: upload a document, download one, delete one.

Uploads are checked before anything is written: the project exists, the name is a plain
file name with an accepted suffix, the size is within the cap, and the bytes are what the
suffix says (a PDF renamed .docx is refused).
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile

from fastapi import APIRouter, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from nodes.backends.extract import DOCUMENTS, IMAGES
from server.deps import State
from server.errors import ApiError
from server.routers.uploads import image_suffix, read_capped
from server.services import knowledge

router = APIRouter(tags=["projects"])
_NAME = re.compile(r"[^\x00-\x1f/\\:*?\"<>|]{1,200}")
# Office files are zips; the folder inside says which kind.
_OFFICE = {".docx": "word/document.xml", ".xlsx": "xl/workbook.xml"}
MEDIA_TYPES = {
    ".pdf": "application/pdf", ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
    ".gif": "image/gif", ".bmp": "image/bmp"}


class UploadOut(BaseModel):
    ok: bool = True
    filename: str
    size_bytes: int
    chunks_added: int
    source_type: str
    message: str


class DeletedOut(BaseModel):
    ok: bool = True
    message: str


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_file_type", message)


def checked_name(raw: str | None) -> tuple[str, str]:
    """(name, suffix) of an acceptable document name, else 400."""
    name = (raw or "").strip()
    if not _NAME.fullmatch(name) or name.startswith("."):
        raise _invalid(f"{name!r} is not a plain file name")
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in DOCUMENTS + IMAGES:
        raise _invalid(f"{name}: only {', '.join(DOCUMENTS + IMAGES)} files can be added to "
                       "a project")
    return name, suffix


def check_content(data: bytes, suffix: str) -> None:
    """400 unless the bytes are a file of the kind ``suffix`` names."""
    if suffix == ".pdf":
        ok = data.startswith(b"%PDF-")
    elif suffix in _OFFICE:
        ok = data.startswith(b"PK\x03\x04") and _has_member(data, _OFFICE[suffix])
    elif suffix in (".txt", ".md"):
        ok = b"\x00" not in data and _utf8(data)
    elif suffix == ".bmp":
        ok = data.startswith(b"BM")
    else:
        ok = image_suffix(data[:16]) == {".jpeg": ".jpg"}.get(suffix, suffix)
    if not ok:
        raise _invalid(f"the file's content is not {suffix[1:].upper()} (checked by its "
                       "bytes, not its name)")


def _has_member(data: bytes, member: str) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return member in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@router.post("/projects/{project_id}/upload", response_model=UploadOut, status_code=201)
async def upload_document(project_id: str, file: UploadFile, state: State) -> UploadOut:
    if await asyncio.to_thread(state.projects.get, project_id) is None:
        raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    name, suffix = checked_name(file.filename)
    data = await read_capped(file, state.settings.max_upload_mb)
    if not data:
        raise ApiError(400, "empty_file", f"{name} is empty")
    check_content(data, suffix)
    document = await knowledge.ingest(state, project_id, name, data)
    return UploadOut(filename=name, size_bytes=document.size_bytes,
                     chunks_added=document.chunks, source_type=document.source_type,
                     message=f"Added {name}: {document.chunks} chunk(s) in the knowledge base")


@router.delete("/projects/{project_id}/documents/{name}", response_model=DeletedOut)
async def delete_document(project_id: str, name: str, state: State) -> DeletedOut:
    if await asyncio.to_thread(state.projects.get, project_id) is None:
        raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    if not await asyncio.to_thread(knowledge.remove, state, project_id, name):
        raise ApiError(404, "not_found", f"Project '{project_id}' has no document {name!r}")
    return DeletedOut(message=f"Deleted {name} and its chunks")


@router.get("/files/projects/{project_id}/documents/{name}", response_class=FileResponse,
            responses={200: {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))},
                             "description": "the document as it was kept"}})
async def document_file(project_id: str, name: str, state: State) -> FileResponse:
    """A document of the project's knowledge base, by the ``path`` its ``files`` entry
    holds (pictures as their EXIF-free copy); sent as an attachment, never rendered."""
    found = await asyncio.to_thread(knowledge.kept_file, state, project_id, name)
    if found is None:
        raise ApiError(404, "file_not_found", f"Project '{project_id}' has no document "
                       f"{name!r}")
    suffix = found.suffix.lower()
    return FileResponse(found, media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
                        filename=name, content_disposition_type="attachment")
