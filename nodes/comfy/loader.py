"""ComfyUI's checkpoint loader on the model store: the handles of a resident pipeline.

CheckpointLoaderSimple loads nothing itself. It names the model whose host holds the
weights; the first node that calls into it makes the host load them, once, for every
graph that names the same checkpoint.
"""

from __future__ import annotations

from typing import Annotated, Any

from engine.models.store import ModelStore
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
from nodes.comfy.value import Component

# The model kinds a checkpoint may have been installed as.
CHECKPOINT_KINDS = ("diffusion", "inpaint")

ModelPart = Annotated[Any, Port("MODEL")]
ClipPart = Annotated[Any, Port("CLIP")]
VaePart = Annotated[Any, Port("VAE")]


def installed_checkpoints() -> list[str]:
    store = ModelStore(get_settings().models_dir)
    return [m.id for m in store.list() if m.kind in CHECKPOINT_KINDS]


def checkpoint_kind(name: str) -> str:
    """The kind ``name`` was installed as; raises ModelNotFoundError, listing what is."""
    store = ModelStore(get_settings().models_dir)
    try:
        manifest = store.get(name)
    except ModelNotFoundError:
        manifest = None
    if manifest is None or manifest.kind not in CHECKPOINT_KINDS:
        raise ModelNotFoundError(f"ckpt_name: {name!r} not in {installed_checkpoints()}")
    return manifest.kind


def part(value: Any, expected: str, node_input: str) -> Component:
    """A MODEL/CLIP/VAE input as a Component of the expected part, or a clear error."""
    if isinstance(value, Component) and value.part == expected:
        return value
    raise ValueError(f"{node_input} input is invalid: {value!r} (expected the {expected} "
                     "of a loaded checkpoint)")


@node("CheckpointLoaderSimple", category="loaders", display_name="Load Checkpoint")
class CheckpointLoaderSimple(Node):
    """Loads a diffusion model checkpoint; diffusion models denoise latents."""

    ckpt_name: str = Input(options_from="models:diffusion,inpaint",
                           description="The name of the checkpoint (model) to load.")

    class Outputs(NodeOutputs):
        MODEL: ModelPart = Output(description="The model used for denoising latents.")
        CLIP: ClipPart = Output(description="The CLIP model used for encoding text prompts.")
        VAE: VaePart = Output(description="The VAE model used for encoding and decoding "
                                          "images to and from latent space.")

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        name = inputs.get("ckpt_name")
        if not isinstance(name, str):
            return []  # wired from another node: checked when it runs
        try:
            checkpoint_kind(name)
        except ModelNotFoundError as exc:
            return [("ckpt_name", str(exc))]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        kind = checkpoint_kind(self.ckpt_name)
        ctx.model(kind, self.ckpt_name)  # resolves now: a missing model fails here
        return self.Outputs(**{
            name: Component(model=self.ckpt_name, kind=kind, part=piece)
            for name, piece in (("MODEL", "unet"), ("CLIP", "clip"), ("VAE", "vae"))})
