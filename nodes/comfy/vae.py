"""ComfyUI's VAE nodes: pictures to raw latents and back, on the checkpoint's host."""

from __future__ import annotations

from typing import Any

from engine.sdk import Input, Node, NodeContext, NodeOutputs, Output, node
from nodes.comfy.conditioning import Latent, crop_to_eight, greyed_out
from nodes.comfy.loader import VaePart, part
from nodes.comfy.stream import host
from nodes.comfy.value import ImageTensor, MaskTensor, image_tensor, latent, mask_tensor


@node("VAEDecode", category="latent", display_name="VAE Decode")
class VAEDecode(Node):
    """Decodes latent images back into pixel space images."""

    samples: Latent = Input(description="The latent to be decoded.")
    vae: VaePart = Input(description="The VAE model used for decoding the latent.")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor = Output(description="The decoded image.")

    def run(self, ctx: NodeContext) -> Outputs:
        vae = host(ctx, part(self.vae, "vae", "vae"))
        return self.Outputs(IMAGE=vae.call("vae_decode", self.samples["samples"]))


@node("VAEEncode", category="latent", display_name="VAE Encode")
class VAEEncode(Node):
    """Encodes a picture into the raw latent of the checkpoint's VAE."""

    pixels: ImageTensor = Input()
    vae: VaePart = Input()

    class Outputs(NodeOutputs):
        LATENT: Latent = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        vae = host(ctx, part(self.vae, "vae", "vae"))
        return self.Outputs(LATENT=latent(vae.call("vae_encode", image_tensor(self.pixels))))


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
        vae = host(ctx, part(self.vae, "vae", "vae"))
        pixels, mask = crop_to_eight(image_tensor(self.pixels), mask_tensor(self.mask))
        return self.Outputs(LATENT=latent(vae.call("vae_encode", greyed_out(pixels, mask)),
                                          noise_mask=grown(mask, self.grow_mask_by)))
