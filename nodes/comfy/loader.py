"""ComfyUI's checkpoint loader on the model store: the handles of a resident pipeline.

CheckpointLoaderSimple loads nothing itself. It names the model whose host holds the
weights; the first node that calls into it makes the host load them, once, for every
graph that names the same checkpoint. ``ckpt_name`` is an installed diffusion model or a
single-file checkpoint in ``$HOMEPILOT_HOME/models/checkpoints`` (see ``folder``), whose
architecture (SD 1.x, 2.x, XL) is read from its keys and whose diffusers-format config
folder is ``models/configs/<arch>`` (no config can be fetched from the Hub here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from engine.sdk import (
    Input,
    ModelNotFoundError,
    Node,
    NodeContext,
    NodeOutputs,
    Output,
    node,
)
from engine.settings import get_settings
from engine.types import Port
from nodes.comfy.folder import ModelFolder, refused_name, store
from nodes.comfy.value import Component

# The model kinds a checkpoint may have been installed as.
CHECKPOINT_KINDS = ("diffusion", "inpaint")
CHECKPOINTS = ModelFolder("checkpoints", "diffusion",
                          "nodes.backends.diffusers_sd:DiffusersBackend", gpu=0.5)

ModelPart = Annotated[Any, Port("MODEL")]
ClipPart = Annotated[Any, Port("CLIP")]
VaePart = Annotated[Any, Port("VAE")]


def installed_checkpoints() -> list[str]:
    installed = [m.id for m in store().list() if m.kind in CHECKPOINT_KINDS]
    return list(dict.fromkeys([*installed, *CHECKPOINTS.files()]))


def checkpoint(name: str) -> tuple[str, str] | Path:
    """(model id, kind) of an installed checkpoint, or the checkpoints folder's file;
    raises ModelNotFoundError, listing what there is, for anything else."""
    try:
        manifest = store().get(name)
    except ModelNotFoundError:
        manifest = None
    if manifest is not None and manifest.kind in CHECKPOINT_KINDS:
        return manifest.id, manifest.kind
    path = CHECKPOINTS.file(name)
    if path is None:
        raise ModelNotFoundError(f"ckpt_name: {name!r} not in {installed_checkpoints()}")
    return path


def hosted(path: Path) -> str:
    """The store id a loose checkpoint file is hosted under, with its architecture and
    the config folder it needs; a clear error when that folder is missing."""
    from nodes.backends.checkpoint import detect_arch

    arch = detect_arch(path)
    config = get_settings().models_dir / "configs" / arch
    if not (config / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"{path.name} is an {arch} checkpoint, and loading one needs its diffusers-format "
            f"config folder at {config} (model_index.json, unet/, vae/, text_encoder/, "
            "tokenizer/, scheduler/): nothing can be fetched from the Hub here")
    return CHECKPOINTS.register(path, options={"arch": arch, "config": str(config)})


def part(value: Any, expected: str, node_input: str) -> Component:
    """A MODEL/CLIP/VAE input as a Component of the expected part, or a clear error."""
    if isinstance(value, Component) and value.part == expected:
        return value
    raise ValueError(f"{node_input} input is invalid: {value!r} (expected the {expected} "
                     "of a loaded checkpoint)")


@node("CheckpointLoaderSimple", category="loaders", display_name="Load Checkpoint")
class CheckpointLoaderSimple(Node):
    """Loads a diffusion model checkpoint; diffusion models denoise latents."""

    ckpt_name: str = Input(options_from="models:diffusion,inpaint|folder:checkpoints",
                           description="The name of the checkpoint (model) to load.")

    class Outputs(NodeOutputs):
        MODEL: ModelPart = Output(description="The model used for denoising latents.")
        CLIP: ClipPart = Output(description="The CLIP model used for encoding text prompts.")
        VAE: VaePart = Output(description="The VAE model used for encoding and decoding "
                                          "images to and from latent space.")

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "ckpt_name", checkpoint)

    def run(self, ctx: NodeContext) -> Outputs:
        found = checkpoint(self.ckpt_name)
        model, kind = (hosted(found), CHECKPOINTS.kind) if isinstance(found, Path) else found
        ctx.model(kind, model)  # resolves now: a missing model fails here
        return self.Outputs(**{
            name: Component(model=model, kind=kind, part=piece)
            for name, piece in (("MODEL", "unet"), ("CLIP", "clip"), ("VAE", "vae"))})
