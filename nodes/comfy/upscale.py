"""ComfyUI's model upscaling: UpscaleModelLoader and ImageUpscaleWithModel on the upscaler's
resident host.

``model_name`` is either an installed model of kind "upscaler" or a weights file in
ComfyUI's folder, ``$HOMEPILOT_HOME/models/upscale_models`` (a relative path with "/").
A loose file is registered in the model store the first time a run names it, as a local
manifest pointing at the file where it lies (id ``upscale-models-<file name>``): its
weights then live on a model host like any installed upscaler, loaded once and shared by
every graph, under Ray as well, and nothing is copied.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from engine.declare import FOLDER_SUFFIXES
from engine.models.manifest import ModelManifest, ModelResources
from engine.models.store import ModelStore
from engine.sdk import Input, ModelNotFoundError, Node, NodeContext, NodeOutputs, Output, node
from engine.settings import get_settings
from engine.types import Port
from nodes.comfy.stream import streamed
from nodes.comfy.value import ImageTensor, image_tensor

FOLDER = "upscale_models"  # ComfyUI's folder name, under the model store
KIND = "upscaler"
BACKEND = "nodes.backends.upscaler:UpscalerBackend"
ID_PREFIX = "upscale-models-"
# ComfyUI's tiling (read when the node runs, so a test may use smaller tiles).
TILE = 512
OVERLAP = 32


class UpscaleModel(BaseModel):
    """An UPSCALE_MODEL value: the store model whose host holds the weights."""

    model_config = ConfigDict(frozen=True)

    model: str  # the model id in the store
    scale: int  # how many times one pass enlarges each side

    def __repr__(self) -> str:
        return f"<upscaler {self.model} x{self.scale}>"


UpscaleModelPort = Annotated[Any, Port("UPSCALE_MODEL")]


def _store() -> ModelStore:
    return ModelStore(get_settings().models_dir)


def folder() -> Path:
    return get_settings().models_dir / FOLDER


def folder_files() -> list[str]:
    """The weights files in the folder, as the editor's combo lists them (relative paths
    with "/", sorted; hidden entries and symlinks left out)."""
    base = folder()
    found = []
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root) / name
            if not name.startswith(".") and path.suffix.lower() in FOLDER_SUFFIXES \
                    and not path.is_symlink():
                found.append(path.relative_to(base).as_posix())
    return sorted(found)


def folder_file(name: str) -> Path | None:
    """The file ``name`` means in the folder, or None. Names leading outside the folder
    are refused: the combo is open, so a graph could name any path."""
    if not name or "\x00" in name:
        return None
    base = folder().resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or path.suffix.lower() not in FOLDER_SUFFIXES \
            or not path.is_file():
        return None
    return path


def upscaler_names() -> list[str]:
    """What ``model_name`` may be: installed upscalers, then the folder's files."""
    installed = [m.id for m in _store().list(KIND)]
    return list(dict.fromkeys([*installed, *folder_files()]))


def resolve(name: str) -> str | Path:
    """The installed upscaler's id, or the folder's file; ModelNotFoundError, listing what
    there is, for anything else. An installed model wins over a file of the same name."""
    try:
        manifest = _store().get(name)
    except ModelNotFoundError:
        manifest = None
    if manifest is not None and manifest.kind == KIND:
        return name
    path = folder_file(name)
    if path is None:
        raise ModelNotFoundError(f"model_name: {name!r} not in {upscaler_names()}")
    return path


def register_file(path: Path) -> str:
    """The store id of a loose weights file, registered as a local manifest if it is not
    yet. The id comes from the file's path in the folder; another file whose name gives
    the same id gets a hash of its path added."""
    store = _store()
    relative = path.relative_to(folder().resolve()).as_posix()
    slug = re.sub(r"[^a-z0-9._-]+", "-", relative.lower()).strip("-._") or "model"
    model_id = ID_PREFIX + slug[:113]
    for candidate in (model_id, f"{ID_PREFIX}{slug[:104]}-"
                      f"{hashlib.sha1(relative.encode()).hexdigest()[:8]}"):
        try:
            known = store.get(candidate)
        except ModelNotFoundError:
            known = None
        if known is not None and Path(known.path) == path and known.kind == KIND:
            return candidate
        if known is None:
            store.register(ModelManifest(
                id=candidate, kind=KIND, format=path.suffix.lstrip(".").lower(),
                source=f"folder:{FOLDER}/{relative}", path=str(path), backend=BACKEND,
                # An upscaler's weights take about their file's size in memory.
                resources=ModelResources(gpu=0.1, memory=path.stat().st_size),
                description=f"{relative} in ComfyUI's {FOLDER} folder"))
            return candidate
    raise ModelNotFoundError(f"model_name: {relative!r}: the model ids {model_id!r} and its "
                             "hashed variant are both taken by other models")


@node("UpscaleModelLoader", category="loaders", display_name="Load Upscale Model")
class UpscaleModelLoader(Node):
    """Loads an upscaler (ESRGAN/RRDBNet or Real-ESRGAN compact) onto its model host: an
    installed upscaler, or a file in the upscale_models folder."""

    model_name: str = Input(options_from=f"models:{KIND}|folder:{FOLDER}",
                            description="an installed upscaler, or a file in "
                                        "models/upscale_models")

    class Outputs(NodeOutputs):
        UPSCALE_MODEL: UpscaleModelPort = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        name = inputs.get("model_name")
        if not isinstance(name, str):
            return []  # wired from another node: checked when it runs
        try:
            resolve(name)
        except ModelNotFoundError as exc:
            return [("model_name", str(exc))]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        found = resolve(self.model_name)
        model_id = register_file(found) if isinstance(found, Path) else found
        # The host loads the weights now, as ComfyUI's loader does: a file that is not an
        # upscaler fails here, at the loader, not later in the upscale.
        scale = int(ctx.model(KIND, model_id).call("native_scale"))
        return self.Outputs(UPSCALE_MODEL=UpscaleModel(model=model_id, scale=scale))


@node("ImageUpscaleWithModel", category="image/upscaling",
      display_name="Upscale Image (using Model)")
class ImageUpscaleWithModel(Node):
    """Enlarges pictures by the upscaler's own factor, in 512 px tiles overlapping by 32
    and blended with linear ramps; a picture that fits one tile goes through in one call.
    Each picture of a batch is done on its own; the result is clamped to 0..1."""

    upscale_model: UpscaleModelPort = Input()
    image: ImageTensor = Input()

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        model = self.upscale_model
        if not isinstance(model, UpscaleModel):
            raise ValueError(f"upscale_model input is invalid: {model!r} (expected the "
                             "output of UpscaleModelLoader)")
        handle = ctx.model(KIND, model.model)
        return self.Outputs(IMAGE=streamed(ctx, handle, "upscale_tensor", "image",
                                           image=image_tensor(self.image), tile=TILE,
                                           overlap=OVERLAP))
