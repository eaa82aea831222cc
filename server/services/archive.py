"""Reading an untrusted zip into memory, safely.

A package comes from anywhere, so nothing in it is believed before it is checked: entry
names (no absolute paths, no ``..``, no backslashes), entry kinds (no links, no
encryption, only stored or deflated data), and sizes. The sizes in the zip's headers are
only a first, cheap refusal; the real caps are counted on the bytes as they come out of
the decompressor, so a header that lies cannot get more out than the caps allow. The
whole archive is read before anything is written: a refusal leaves no trace.
"""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from server.errors import ApiError

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    entries: int = 256
    file_bytes: int = 16 * 1024**2  # any one entry, decompressed
    total_bytes: int = 64 * 1024**2  # all entries together, decompressed
    # Decompressed ÷ compressed, per entry, once an entry is past ``ratio_floor``: real
    # pictures hardly compress, JSON ~10:1; a zip bomb is 1000:1.
    ratio: int = 100
    ratio_floor: int = 1024**2


def refuse(message: str) -> ApiError:
    return ApiError(400, "invalid_package", message)


def safe_name(name: str) -> bool:
    """A relative path inside the archive: no root, drive, backslash, ``.``/``..``."""
    if not name or len(name) > 255 or "\x00" in name or "\\" in name:
        return False
    path = PurePosixPath(name.rstrip("/"))
    if path.is_absolute() or ":" in path.parts[0]:
        return False
    return all(part not in ("", ".", "..") for part in path.parts)


def _check_entry(info: zipfile.ZipInfo, limits: Limits) -> None:
    if not safe_name(info.filename):
        raise refuse(f"Unsafe path in package: {info.filename!r}")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise refuse(f"Links are not allowed in a package: {info.filename!r}")
    if info.flag_bits & 0x1:
        raise refuse(f"Encrypted entries are not allowed: {info.filename!r}")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise refuse(f"Entry {info.filename!r} uses an unsupported compression")
    if info.file_size > limits.file_bytes:
        raise refuse(f"Entry {info.filename!r} is larger than {limits.file_bytes:,} bytes")


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits,
                budget: int) -> bytes:
    """The entry's bytes, counted as they are decompressed against the per-file cap,
    what is left of the total, and the compression ratio."""
    out = bytearray()
    cap = min(limits.file_bytes, budget)
    packed = max(info.compress_size, 1)
    with archive.open(info) as stream:
        while chunk := stream.read(CHUNK):
            out += chunk
            if len(out) > cap:
                which = "the per-file" if cap == limits.file_bytes else "the total"
                raise refuse(f"Entry {info.filename!r} decompresses past {which} size cap")
            if len(out) > limits.ratio_floor and len(out) > limits.ratio * packed:
                raise refuse(f"Entry {info.filename!r} decompresses more than "
                             f"{limits.ratio}:1 (a zip bomb?)")
    return bytes(out)


def read_zip(data: bytes, limits: Limits | None = None) -> dict[str, bytes]:
    """Every file of the archive by name (folders left out), or a 400 naming the first
    problem found."""
    limits = limits or Limits()
    if not data:
        raise refuse("Empty file")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise refuse(f"Not a .hpersona package (not a zip file): {exc}") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.entries:
            raise refuse(f"Package has {len(entries)} entries; at most {limits.entries}")
        names = [info.filename for info in entries]
        if len(set(names)) != len(names):
            raise refuse("Package has the same entry twice")
        for info in entries:
            _check_entry(info, limits)
        if sum(info.file_size for info in entries) > limits.total_bytes:
            raise refuse(f"Package decompresses past {limits.total_bytes:,} bytes")
        files: dict[str, bytes] = {}
        used = 0
        for info in entries:
            if info.is_dir():
                continue
            try:
                body = _read_entry(archive, info, limits, limits.total_bytes - used)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
                raise refuse(f"Entry {info.filename!r} is damaged: {exc}") from exc
            used += len(body)
            files[info.filename] = body
    return files
