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
from nodes.backends.unet import WEIGHT_DTYPES
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


# ComfyUI reads lone diffusion models from models/diffusion_models, and models/unet too.
DIFFUSION_MODELS = ModelFolder("diffusion_models", "unet", "nodes.backends.unet:UnetBackend",
                               gpu=0.5, aliases=("unet",))


def config_for(arch: str, needed: str, path: Path) -> Path:
    """``models/configs/<arch>``, the diffusers-format config folder a lone part file is
    built with, or a clear error naming what is missing there."""
    config = get_settings().models_dir / "configs" / arch
    if not (config / needed).exists():
        raise ModelNotFoundError(
            f"{path.name} is an {arch} model, and loading it needs the diffusers-format "
            f"configs of {arch} at {config} ({needed} is missing): nothing can be fetched "
            "from the Hub here")
    return config


def diffusion_model(name: str) -> Path:
    path = DIFFUSION_MODELS.file(name)
    if path is None:
        raise ModelNotFoundError(f"unet_name: {name!r} not in {DIFFUSION_MODELS.files()}")
    return path


@node("UNETLoader", category="advanced/loaders", display_name="Load Diffusion Model")
class UNETLoader(Node):
    """A lone diffusion model (UNet) file from models/diffusion_models: SD 1.x/2.x/XL, in
    the original or diffusers' layout, built with models/configs/<arch>."""

    unet_name: str = Input(options_from=DIFFUSION_MODELS.source)
    weight_dtype: str = Input("default", choices=list(WEIGHT_DTYPES),
                              description="fp8 stores the weights in 8 bits and computes "
                                          "each layer in full precision.")

    class Outputs(NodeOutputs):
        MODEL: ModelPart = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "unet_name", diffusion_model)

    def run(self, ctx: NodeContext) -> Outputs:
        from nodes.backends.unet import unet_arch

        path = diffusion_model(self.unet_name)
        arch = unet_arch(path)
        config = config_for(arch, "unet/config.json", path)
        variant = "" if self.weight_dtype == "default" else self.weight_dtype
        model = DIFFUSION_MODELS.register(path, options={
            "arch": arch, "config": str(config), "weight_dtype": self.weight_dtype},
            variant=variant)
        ctx.model(DIFFUSION_MODELS.kind, model)  # the host loads it now: a bad file fails here
        return self.Outputs(MODEL=Component(model=model, kind=DIFFUSION_MODELS.kind,
                                            part="unet"))
