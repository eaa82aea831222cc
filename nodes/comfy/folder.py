"""ComfyUI's model folders (``$HOMEPILOT_HOME/models/<folder>/``) beside our model store.

A loader may name an installed model or a weights file someone dropped into ComfyUI's
folder for it (``checkpoints``, ``upscale_models``...). A loose file is registered in the
model store the first time a run names it, as a local manifest pointing at the file where
it lies (id ``<folder>-<file name>``): its weights then live on a model host like any
installed model, loaded once and shared by every graph, under Ray as well, and nothing is
copied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.declare import FOLDER_SUFFIXES
from engine.files import listed_files
from engine.models.manifest import ModelManifest, ModelResources
from engine.models.store import ModelStore
from engine.sdk import ModelNotFoundError
from engine.settings import get_settings


def store() -> ModelStore:
    return ModelStore(get_settings().models_dir)


def refused_name(inputs: dict[str, Any], name: str,
                 resolve: Callable[[str], Any]) -> list[tuple[str | None, str]]:
    """A loader's check of the model it names: ``resolve`` raises ModelNotFoundError
    (listing what there is) for a name that is not installed. A name wired from another
    node is checked when the loader runs."""
    value = inputs.get(name)
    if not isinstance(value, str):
        return []
    try:
        resolve(value)
    except ModelNotFoundError as exc:
        return [(name, str(exc))]
    return []


@dataclass(frozen=True)
class ModelFolder:
    """One of ComfyUI's model folders and how its files are hosted."""

    name: str  # ComfyUI's folder name: "checkpoints", "upscale_models"...
    kind: str = ""  # the model kind a file is hosted as ("": its files are never hosted)
    backend: str = ""  # "module:Class" of the host's backend
    gpu: float = 0.1  # the GPU share a file's host asks for
    # Older folder names ComfyUI still reads for the same files ("unet" beside
    # "diffusion_models", "clip" beside "text_encoders")
    aliases: tuple[str, ...] = ()

    @property
    def id_prefix(self) -> str:
        return self.name.replace("_", "-") + "-"

    @property
    def source(self) -> str:
        """The ``options_from`` source listing the folder and its aliases."""
        return "|".join(f"folder:{name}" for name in (self.name, *self.aliases))

    def path(self) -> Path:
        return get_settings().models_dir / self.name

    def paths(self) -> list[Path]:
        return [get_settings().models_dir / name for name in (self.name, *self.aliases)]

    def files(self) -> list[str]:
        """The weights files, as the editor's combo lists them (relative paths with "/",
        sorted; hidden entries and symlinks left out; the aliases' merged in)."""
        found = {name for folder in self.paths() for name in listed_files(folder,
                                                                          FOLDER_SUFFIXES)}
        return sorted(found)

    def file(self, name: str) -> Path | None:
        """The file ``name`` means in the folder (or an alias), or None. Names leading
        outside the folder are refused: the combo is open, so a graph could name any
        path."""
        if not name or "\x00" in name:
            return None
        for folder in self.paths():
            base = folder.resolve()
            path = (base / name).resolve()
            if path.is_relative_to(base) and path.suffix.lower() in FOLDER_SUFFIXES \
                    and path.is_file():
                return path
        return None

    def register(self, path: Path, options: dict[str, Any] | None = None,
                 variant: str = "", gpu: float | None = None) -> str:
        """The store id of a loose weights file, registered as a local manifest if it is
        not yet. The id comes from the file's path in the folder (and ``variant``, for one
        file hosted several ways, e.g. in fp8); another file whose name gives the same id
        gets a hash of its path added."""
        if not self.backend:
            raise ValueError(f"files in {self.name} are not hosted on their own")
        models = store()
        folder = next(f.resolve() for f in self.paths() if path.is_relative_to(f.resolve()))
        relative = path.relative_to(folder).as_posix()
        named = f"{relative}-{variant}" if variant else relative
        slug = re.sub(r"[^a-z0-9._-]+", "-", named.lower()).strip("-._") or "model"
        model_id = self.id_prefix + slug[:113]
        hashed = f"{self.id_prefix}{slug[:104]}-{hashlib.sha1(named.encode()).hexdigest()[:8]}"
        for candidate in (model_id, hashed):
            try:
                known = models.get(candidate)
            except ModelNotFoundError:
                known = None
            if known is not None and Path(known.path) == path and known.kind == self.kind:
                return candidate
            if known is None:
                models.register(ModelManifest(
                    id=candidate, kind=self.kind,  # type: ignore[arg-type]
                    format=path.suffix.lstrip(".").lower(),
                    source=f"folder:{self.name}/{relative}", path=str(path),
                    backend=self.backend, options=options or {},
                    # Weights take about their file's size in memory.
                    resources=ModelResources(gpu=self.gpu if gpu is None else gpu,
                                             memory=path.stat().st_size),
                    description=f"{relative} in ComfyUI's {self.name} folder"))
                return candidate
        raise ModelNotFoundError(f"{relative!r}: the model ids {model_id!r} and its hashed "
                                 "variant are both taken by other models")
