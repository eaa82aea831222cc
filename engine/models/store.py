"""The model store: ``$HOMEPILOT_HOME/models/<id>/manifest.json`` per model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pydantic import ValidationError

from engine.errors import EngineError
from engine.models.manifest import ModelManifest


class ModelNotFoundError(EngineError):
    """No model with that id (or none of that kind) is installed."""


class ModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        # manifest path -> ((mtime_ns, size), manifest): every request asks for the list,
        # and parsing each manifest again would make that a disk scan every time.
        self._parsed: dict[Path, tuple[tuple[int, int], ModelManifest]] = {}

    def folder(self, model_id: str) -> Path:
        return self.root / model_id

    def register(self, manifest: ModelManifest) -> ModelManifest:
        """Write the manifest (atomically); registering again replaces it."""
        folder = self.folder(manifest.id)
        folder.mkdir(parents=True, exist_ok=True)
        if not manifest.size_bytes:
            manifest = manifest.model_copy(update={"size_bytes": _size(self.weights(manifest))})
        temp = folder / ".manifest.json.tmp"
        temp.write_text(manifest.model_dump_json(indent=2))
        os.replace(temp, folder / "manifest.json")
        return manifest

    def list(self, kind: str | None = None) -> list[ModelManifest]:
        found = []
        if self.root.is_dir():
            for entry in sorted(self.root.iterdir()):
                manifest = self._read(entry / "manifest.json")
                if manifest is not None and (kind is None or manifest.kind == kind):
                    found.append(manifest)
        return found

    def get(self, model_id: str) -> ModelManifest:
        manifest = self._read(self.folder(model_id) / "manifest.json") \
            if _safe(model_id) else None
        if manifest is None:
            known = ", ".join(m.id for m in self.list()) or "none"
            raise ModelNotFoundError(f"model '{model_id}' is not installed (installed: {known}); "
                                "see `homepilot models list`")
        return manifest

    def default(self, kind: str) -> ModelManifest:
        """The model a node gets when it names none: a real one before a test model."""
        candidates = sorted(self.list(kind), key=lambda m: (m.test, not m.bundled, m.id))
        if not candidates:
            raise ModelNotFoundError(f"no {kind} model is installed; see `homepilot models list`")
        return candidates[0]

    def resolve(self, kind: str, model_id: str = "") -> ModelManifest:
        manifest = self.get(model_id) if model_id else self.default(kind)
        if manifest.kind != kind:
            raise ModelNotFoundError(f"model '{manifest.id}' is a {manifest.kind} model, "
                                     f"not {kind}")
        return manifest

    def weights(self, manifest: ModelManifest) -> Path:
        path = Path(manifest.path)
        return path if path.is_absolute() else self.folder(manifest.id) / path

    def remove(self, model_id: str) -> ModelManifest:
        """Delete the model's folder (weights stored outside it, like bundled ones, stay)."""
        manifest = self.get(model_id)
        shutil.rmtree(self.folder(model_id))
        return manifest

    def _read(self, path: Path) -> ModelManifest | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        known = self._parsed.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            manifest = ModelManifest.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError, ValidationError):
            return None
        self._parsed[path] = (stamp, manifest)
        return manifest


def _safe(model_id: str) -> bool:
    # A NUL makes every file call raise ValueError (not OSError): never a model id.
    return bool(model_id) and "/" not in model_id and "\x00" not in model_id \
        and not model_id.startswith(".")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0
