"""ComfyUI's VAE nodes: pictures to raw latents and back, on the checkpoint's host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.sdk import (
    Input,
    ModelNotFoundError,
    Node,
    NodeContext,
    NodeOutputs,
    Output,
    node,
)
from nodes.comfy.conditioning import Latent, crop_to_eight, greyed_out
from nodes.comfy.folder import ModelFolder, refused_name
from nodes.comfy.loader import VaePart, part
from nodes.comfy.stream import PIXEL_SPACE, vae_decode, vae_encode
from nodes.comfy.value import Component, ImageTensor, MaskTensor, image_tensor, latent, mask_tensor


@node("VAEDecode", category="latent", display_name="VAE Decode")
class VAEDecode(Node):
    """Decodes latent images back into pixel space images."""

    samples: Latent = Input(description="The latent to be decoded.")
    vae: VaePart = Input(description="The VAE model used for decoding the latent.")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor = Output(description="The decoded image.")

    def run(self, ctx: NodeContext) -> Outputs:
        vae = part(self.vae, "vae", "vae")
        return self.Outputs(IMAGE=vae_decode(ctx, vae, self.samples["samples"]))


@node("VAEEncode", category="latent", display_name="VAE Encode")
class VAEEncode(Node):
    """Encodes a picture into the raw latent of the checkpoint's VAE."""

    pixels: ImageTensor = Input()
    vae: VaePart = Input()

    class Outputs(NodeOutputs):
        LATENT: Latent = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        vae = part(self.vae, "vae", "vae")
        return self.Outputs(LATENT=latent(vae_encode(ctx, vae, image_tensor(self.pixels))))


def grown(mask: Any, by: int) -> Any:
    """The mask rounded and dilated by a ``by``×``by`` box (ComfyUI's grow_mask_by)."""
    import torch

    rounded = mask.round()
    if by <= 0:
        return rounded
    kernel = torch.ones((1, 1, by, by))
    padding = (by - 1 + 1) // 2  # ceil((by - 1) / 2)
    out = torch.nn.functional.conv2d(rounded, kernel, padding=padding).clamp(0, 1)
    return out[:, :, :mask.shape[2], :mask.shape[3]]


@node("VAEEncodeForInpaint", category="latent/inpaint", display_name="VAE Encode (for Inpainting)")
class VAEEncodeForInpaint(Node):
    """Encodes the picture with the masked part greyed out; the latent's noise_mask is the
    mask grown by ``grow_mask_by`` pixels."""

    pixels: ImageTensor = Input()
    vae: VaePart = Input()
    mask: MaskTensor = Input()
    grow_mask_by: int = Input(6, min=0, max=64, step=1)

    class Outputs(NodeOutputs):
        LATENT: Latent = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        vae = part(self.vae, "vae", "vae")
        pixels, mask = crop_to_eight(image_tensor(self.pixels), mask_tensor(self.mask))
        return self.Outputs(LATENT=latent(vae_encode(ctx, vae, greyed_out(pixels, mask)),
                                          noise_mask=grown(mask, self.grow_mask_by)))


VAE_FILES = ModelFolder("vae", "vae", "nodes.backends.vae:VaeBackend", gpu=0.1)


def vae_names() -> list[str]:
    """VAELoader's choices: the vae folder's files, then the identity VAE (ComfyUI lists
    its tiny taesd VAEs too when their files exist; those are not loaded here)."""
    return [*VAE_FILES.files(), PIXEL_SPACE]


def vae_file(name: str) -> Path | None:
    """The file ``name`` means, None for pixel_space; ModelNotFoundError otherwise."""
    if name == PIXEL_SPACE:
        return None
    path = VAE_FILES.file(name)
    if path is None:
        raise ModelNotFoundError(f"vae_name: {name!r} not in {vae_names()}")
    return path


@node("VAELoader", category="loaders", display_name="Load VAE")
class VAELoader(Node):
    """A VAE from a file in models/vae (SD 1.x/2.x/XL, original layout), hosted on its
    own; ``pixel_space`` is the identity, for models that work on pixels."""

    vae_name: str = Input(options_from="folder:vae", suggestions=[PIXEL_SPACE])

    class Outputs(NodeOutputs):
        VAE: VaePart = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "vae_name", vae_file)

    def run(self, ctx: NodeContext) -> Outputs:
        path = vae_file(self.vae_name)
        if path is None:
            return self.Outputs(VAE=Component(model=PIXEL_SPACE, kind="vae", part="vae"))
        model = VAE_FILES.register(path)
        ctx.model("vae", model)  # the host loads it now: a file that is no VAE fails here
        return self.Outputs(VAE=Component(model=model, kind="vae", part="vae"))
