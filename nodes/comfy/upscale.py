"""ComfyUI's model upscaling: UpscaleModelLoader and ImageUpscaleWithModel on the upscaler's
resident host.

``model_name`` is either an installed model of kind "upscaler" or a weights file in
ComfyUI's folder, ``$HOMEPILOT_HOME/models/upscale_models`` (a relative path with "/"),
hosted as ``nodes.comfy.folder`` describes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from engine.sdk import Input, ModelNotFoundError, Node, NodeContext, NodeOutputs, Output, node
from engine.types import Port
from nodes.comfy.folder import ModelFolder, refused_name, store
from nodes.comfy.stream import streamed
from nodes.comfy.value import ImageTensor, image_tensor

FOLDER = "upscale_models"  # ComfyUI's folder name, under the model store
KIND = "upscaler"
BACKEND = "nodes.backends.upscaler:UpscalerBackend"
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


UPSCALE_MODELS = ModelFolder(FOLDER, KIND, BACKEND)


def folder() -> Path:
    return UPSCALE_MODELS.path()


def folder_file(name: str) -> Path | None:
    return UPSCALE_MODELS.file(name)


def register_file(path: Path) -> str:
    return UPSCALE_MODELS.register(path)


def upscaler_names() -> list[str]:
    """What ``model_name`` may be: installed upscalers, then the folder's files."""
    installed = [m.id for m in store().list(KIND)]
    return list(dict.fromkeys([*installed, *UPSCALE_MODELS.files()]))


def resolve(name: str) -> str | Path:
    """The installed upscaler's id, or the folder's file; ModelNotFoundError, listing what
    there is, for anything else. An installed model wins over a file of the same name."""
    try:
        manifest = store().get(name)
    except ModelNotFoundError:
        manifest = None
    if manifest is not None and manifest.kind == KIND:
        return name
    path = folder_file(name)
    if path is None:
        raise ModelNotFoundError(f"model_name: {name!r} not in {upscaler_names()}")
    return path


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
        return refused_name(inputs, "model_name", resolve)

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
