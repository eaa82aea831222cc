"""Builders for the persona package tests: pictures, honest packages, hostile ones, and a
snapshot of everything an import could write (file store and project rows)."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

MANIFEST = {"package_version": 2, "schema_version": 2, "kind": "homepilot.persona",
            "project_type": "persona"}


def picture(width: int = 400, height: int = 300, fmt: str = "PNG") -> bytes:
    """Red side bands 50 px wide, a blue centre with a green dot: a centre crop of a
    400×300 picture keeps blue edges and no red."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    for x in list(range(50)) + list(range(width - 50, width)):
        for y in range(height):
            image.putpixel((x, y), (255, 0, 0))
    for x in range(width // 2 - 5, width // 2 + 5):
        for y in range(height // 2 - 5, height // 2 + 5):
            image.putpixel((x, y), (0, 255, 0))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def webp(size: int = 256) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (10, 20, 30)).save(out, format="WEBP")
    return out.getvalue()


def huge_png(side: int = 7_000) -> bytes:
    """A valid PNG header claiming side×side pixels, with almost no data: decoding it
    would take gigabytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def package(entries: dict[str, bytes | str | dict[str, Any]],
            compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, body in entries.items():
            if isinstance(body, dict):
                body = json.dumps(body)
            archive.writestr(name, body)
    return out.getvalue()


def minimal(**extra: bytes | str | dict[str, Any]) -> dict[str, bytes | str | dict[str, Any]]:
    """The smallest valid package (v1: manifest and blueprint), plus ``extra`` entries."""
    return {"manifest.json": MANIFEST, "blueprint/persona_agent.json": {"label": "Mira"},
            "blueprint/persona_appearance.json": {}, **extra}


def with_entry(name: str, body: bytes, *, mode: int | None = None,
               compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A valid minimal package plus one entry written as given (name not cleaned)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for known, value in minimal().items():
            archive.writestr(known, json.dumps(value))
        info = zipfile.ZipInfo(name)
        info.compress_type = compression
        if mode is not None:
            info.create_system = 3
            info.external_attr = mode << 16
        archive.writestr(info, body)
    return out.getvalue()


def zeros_entry(name: str, size: int) -> bytes:
    """A valid minimal package plus ``size`` zero bytes deflated (about 1000:1)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for known, value in minimal().items():
            archive.writestr(known, json.dumps(value))
        with archive.open(name, "w", force_zip64=True) as stream:
            block = b"\x00" * 1024**2
            for _ in range(size // len(block)):
                stream.write(block)
    return out.getvalue()


def forge_size(data: bytes, name: str, claimed: int) -> bytes:
    """The package with ``name``'s uncompressed size rewritten to ``claimed`` in both its
    local and its central header: the lie a zip bomb tells."""
    buffer = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        offset = archive.getinfo(name).header_offset
    struct.pack_into("<I", buffer, offset + 22, claimed)
    at = buffer.find(b"PK\x01\x02")
    while at != -1:
        length = struct.unpack_from("<H", buffer, at + 28)[0]
        if bytes(buffer[at + 46:at + 46 + length]).decode() == name:
            struct.pack_into("<I", buffer, at + 24, claimed)
        at = buffer.find(b"PK\x01\x02", at + 4)
    return bytes(buffer)


def sparse(size: int, every: int = 40) -> bytes:
    """Bytes that deflate about 15:1: zeros with a pseudo-random byte every ``every``."""
    data = bytearray(size)
    seed = 12345
    for i in range(0, size, every):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        data[i] = seed & 0xFF
    return bytes(data)


SYMLINK = stat.S_IFLNK | 0o777


def snapshot(client: Any) -> tuple[dict[str, str], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every file under the store (hidden ones too) by hash, and every project row."""
    state = client.app.state.homepilot
    root: Path = state.files.root
    files = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()} \
        if root.exists() else {}
    folders = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()) \
        if root.exists() else []
    files.update({f"{f}/": "dir" for f in folders})
    return (files, state.db.read("SELECT * FROM projects ORDER BY id"),
            state.db.read("SELECT * FROM project_documents ORDER BY project_id, name"))
