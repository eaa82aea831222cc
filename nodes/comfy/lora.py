"""ComfyUI's LoRA loaders: a LoRA from models/loras added to a MODEL's and a CLIP's handles.

Nothing is copied or loaded on the worker: the handles carry (file, strength) pairs, and
the host that runs the UNet or the text encoders merges exactly those into its weights
before the call (``nodes.backends.lora``), taking them out again for calls without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.sdk import Input, ModelNotFoundError, Node, NodeContext, NodeOutputs, Output, node
from nodes.comfy.folder import ModelFolder, refused_name
from nodes.comfy.loader import ClipPart, ModelPart, part
from nodes.comfy.value import Component

# A LoRA is never hosted on its own: the hosts of what it patches read its file.
LORAS = ModelFolder("loras")
# The model kinds whose hosts patch weights (SD-family UNets and CLIPs)
PATCHED_KINDS = ("diffusion", "inpaint", "unet", "clip")
STRENGTH = dict(min=-100.0, max=100.0, step=0.01)


def lora_file(name: str) -> Path:
    path = LORAS.file(name)
    if path is None:
        raise ModelNotFoundError(f"lora_name: {name!r} not in {LORAS.files()}")
    return path


def patched(component: Component, path: Path, strength: float) -> Component:
    """The handle with the LoRA added (strength 0: unchanged)."""
    if strength == 0:
        return component
    if component.kind not in PATCHED_KINDS:
        raise ValueError(f"a LoRA cannot be applied to the {component.part} of "
                         f"{component.model} (a {component.kind} model): LoRAs patch "
                         "Stable Diffusion UNets and CLIPs")
    return component.model_copy(update={"loras": (*component.loras, (str(path), strength))})


def checked(name: str) -> Path:
    """The LoRA's file, read once here so a file that holds no LoRA fails at this node."""
    from nodes.backends.lora import read_pairs

    path = lora_file(name)
    read_pairs(path)
    return path


@node("LoraLoader", category="loaders", display_name="Load LoRA")
class LoraLoader(Node):
    """LoRAs modify diffusion and CLIP models, altering the way in which latents are
    denoised, such as applying styles. Multiple LoRA nodes can be linked together."""

    model: ModelPart = Input(description="The diffusion model the LoRA will be applied to.")
    clip: ClipPart = Input(description="The CLIP model the LoRA will be applied to.")
    lora_name: str = Input(options_from="folder:loras", description="The name of the LoRA.")
    strength_model: float = Input(1.0, **STRENGTH, description="How strongly to modify the "
                                  "diffusion model. This value can be negative.")
    strength_clip: float = Input(1.0, **STRENGTH, description="How strongly to modify the "
                                 "CLIP model. This value can be negative.")

    class Outputs(NodeOutputs):
        MODEL: ModelPart = Output(description="The modified diffusion model.")
        CLIP: ClipPart = Output(description="The modified CLIP model.")

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "lora_name", lora_file)

    def run(self, ctx: NodeContext) -> Outputs:
        if self.strength_model == 0 and self.strength_clip == 0:
            return self.Outputs(MODEL=self.model, CLIP=self.clip)
        path = checked(self.lora_name)
        return self.Outputs(
            MODEL=patched(part(self.model, "unet", "model"), path, self.strength_model),
            CLIP=patched(part(self.clip, "clip", "clip"), path, self.strength_clip))


@node("LoraLoaderModelOnly", category="loaders", display_name="LoraLoaderModelOnly")
class LoraLoaderModelOnly(Node):
    """A LoRA applied to the diffusion model alone."""

    model: ModelPart = Input()
    lora_name: str = Input(options_from="folder:loras")
    strength_model: float = Input(1.0, **STRENGTH)

    class Outputs(NodeOutputs):
        MODEL: ModelPart = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "lora_name", lora_file)

    def run(self, ctx: NodeContext) -> Outputs:
        if self.strength_model == 0:
            return self.Outputs(MODEL=self.model)
        return self.Outputs(MODEL=patched(part(self.model, "unet", "model"),
                                          checked(self.lora_name), self.strength_model))
