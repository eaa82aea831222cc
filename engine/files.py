"""The artifact store: files with generated ids under ``$HOMEPILOT_HOME/files``."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from engine.errors import EngineError
from engine.settings import get_settings

_ID = re.compile(r"^f_[0-9a-f]{20}(\.[a-z0-9]{1,8})?$")


class FileStore:
    """Writes files atomically (temp name, then rename) so a crash leaves no half file.

    ``record``: a list each saved id is appended to (a node's context keeps one, so the
    cache knows which files a result names and can tell when one was deleted)."""

    def __init__(self, root: str | Path, record: list[str] | None = None) -> None:
        self.root = Path(root)
        self.record = record

    def recording(self, record: list[str]) -> FileStore:
        """This store, noting every id it saves in ``record``."""
        return FileStore(self.root, record)

    def exists(self, file_id: str) -> bool:
        return bool(_ID.match(file_id)) and (self.root / file_id).is_file()

    @classmethod
    def default(cls) -> FileStore:
        return cls(get_settings().home / "files")

    def save(self, data: bytes, suffix: str = "") -> str:
        """Store bytes; returns the generated id (``f_<20 hex>`` plus the suffix)."""
        suffix = suffix.lower()
        if suffix and not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
            raise EngineError(f"file suffix {suffix!r} is not allowed; use e.g. '.png'")
        self.root.mkdir(parents=True, exist_ok=True)
        file_id = f"f_{secrets.token_hex(10)}{suffix}"
        target = self.root / file_id
        temp = self.root / f".{file_id}.tmp"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        if self.record is not None:
            self.record.append(file_id)
        return file_id

    def remove_partial(self) -> int:
        """Delete the temporary files of writes a crash cut short (``.f_....tmp``; never
        served, since ids do not start with a dot); returns how many."""
        removed = 0
        if self.root.is_dir():
            for temp in self.root.glob(".f_*.tmp"):
                temp.unlink(missing_ok=True)
                removed += 1
        return removed

    def path(self, file_id: str) -> Path:
        """Where a stored file lives; ids that are not ours are refused, never joined."""
        if not _ID.match(file_id):
            raise EngineError(f"{file_id!r} is not a file id of this store")
        return self.root / file_id

    def read(self, file_id: str) -> bytes:
        path = self.path(file_id)
        if not path.is_file():
            raise EngineError(f"file {file_id} does not exist")
        return path.read_bytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file under a temporary name, then rename it: a crash never leaves half a
    file where a reader would find it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


class ReadRefusedError(EngineError):
    """A path outside the folders nodes may read."""


def readable_path(path: str) -> Path:
    """``path`` resolved (symlinks followed) if it lies inside one of the settings'
    readable folders. A relative path is looked up in the input folder, then
    in each folder of ``HOMEPILOT_READ_DIRS``; the first that holds it wins. It may not
    exist. Raises ReadRefusedError otherwise, naming the folders that are allowed."""
    settings = get_settings()
    roots = settings.readable_dirs()
    given = Path(path).expanduser()
    if given.is_absolute():
        candidates = [given]
    else:
        bases = [settings.input_dir, *settings.extra_read_dirs()]
        candidates = [base / given for base in bases]
    first: Path | None = None
    for candidate in candidates:
        try:  # containment first: a refusal must not tell whether the file exists
            resolved = candidate.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            continue
        if _inside(resolved, roots):
            if resolved.exists():
                return resolved
            first = first or resolved
    if first is not None:
        return first
    raise ReadRefusedError(f"{path!r} is outside the folders nodes may read (the file store, "
                           f"{settings.input_dir}, {settings.models_dir}); copy it into "
                           f"{settings.input_dir} or add its folder to HOMEPILOT_READ_DIRS")


def _inside(path: Path, roots: list[Path]) -> bool:
    for root in roots:
        try:
            if path.is_relative_to(root.resolve()):
                return True
        except OSError:
            continue
    return False


# Files listed at most: a huge folder must not make every editor load slow.
MAX_LISTED_FILES = 10_000


def listed_files(folder: Path, suffixes: frozenset[str]) -> list[str]:
    """The files under ``folder`` with one of ``suffixes`` (lower-case), as sorted relative
    paths with ``/`` (``sub/a.png``), as ComfyUI lists its folders in combos; hidden
    entries and symlinks are left out."""
    found: list[str] = []
    if not folder.is_dir():
        return found
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(root)
        for name in files:
            path = base / name
            if name.startswith(".") or path.suffix.lower() not in suffixes \
                    or path.is_symlink():
                continue
            found.append(path.relative_to(folder).as_posix())
            if len(found) >= MAX_LISTED_FILES:
                return sorted(found)
    return sorted(found)
