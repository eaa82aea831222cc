"""ComfyUI's conditioning nodes: prompts encoded by the checkpoint's CLIP on its host."""

from __future__ import annotations

from typing import Annotated, Any

from engine.sdk import Input, Node, NodeContext, NodeOutputs, Output, node
from engine.types import Port
from nodes.comfy.loader import ClipPart, VaePart, part
from nodes.comfy.stream import host, patches, vae_encode
from nodes.comfy.value import ImageTensor, MaskTensor, image_tensor, latent, mask_tensor

Conditioning = Annotated[Any, Port("CONDITIONING")]
Latent = Annotated[Any, Port("LATENT")]


@node("CLIPTextEncode", category="conditioning", display_name="CLIP Text Encode (Prompt)")
class CLIPTextEncode(Node):
    """Encodes a text prompt using a CLIP model into an embedding that can be used to guide
    the diffusion model towards generating specific images."""

    text: str = Input(multiline=True, description="The text to be encoded.")
    clip: ClipPart = Input(description="The CLIP model used for encoding the text.")

    class Outputs(NodeOutputs):
        CONDITIONING: Conditioning = Output(
            description="A conditioning containing the embedded text used to guide the "
                        "diffusion model.")

    def run(self, ctx: NodeContext) -> Outputs:
        if self.clip is None:
            raise RuntimeError("ERROR: clip input is invalid: None\n\nIf the clip is from a "
                               "checkpoint loader node your checkpoint does not contain a "
                               "valid clip or text encoder model.")
        clip = part(self.clip, "clip", "clip")
        return self.Outputs(CONDITIONING=host(ctx, clip).call("encode_text", self.text,
                                                              **patches(clip)))


@node("ConditioningCombine", category="conditioning", display_name="Conditioning (Combine)")
class ConditioningCombine(Node):
    """Both conditionings guide together: each is evaluated and their predictions averaged."""

    conditioning_1: Conditioning = Input()
    conditioning_2: Conditioning = Input()

    class Outputs(NodeOutputs):
        CONDITIONING: Conditioning = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(CONDITIONING=[*self.conditioning_1, *self.conditioning_2])


def crop_to_eight(pixels: Any, mask: Any) -> tuple[Any, Any]:
    """Pixels (B×H×W×C) and a mask resized to them, both cropped to multiples of 8 around
    the centre, as ComfyUI's inpaint nodes do."""
    import torch

    mask = torch.nn.functional.interpolate(
        mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]), size=pixels.shape[1:3],
        mode="bilinear")
    height, width = pixels.shape[1] // 8 * 8, pixels.shape[2] // 8 * 8
    top, left = (pixels.shape[1] % 8) // 2, (pixels.shape[2] % 8) // 2
    return (pixels[:, top:top + height, left:left + width, :],
            mask[:, :, top:top + height, left:left + width])


def greyed_out(pixels: Any, mask: Any) -> Any:
    """The pixels with the (rounded) masked part set to 0.5 grey, alpha kept."""
    keep = (1.0 - mask.round()).movedim(1, -1)
    grey = pixels.clone()
    grey[..., :3] = (pixels[..., :3] - 0.5) * keep + 0.5
    return grey


@node("InpaintModelConditioning", category="conditioning/inpaint",
      display_name="InpaintModelConditioning")
class InpaintModelConditioning(Node):
    """Conditions for an inpainting model: the picture with the masked part greyed out
    goes with both prompts; the latent is the original picture's (masked by noise_mask)."""

    positive: Conditioning = Input()
    negative: Conditioning = Input()
    vae: VaePart = Input()
    pixels: ImageTensor = Input()
    mask: MaskTensor = Input()
    noise_mask: bool = Input(True, description="Add a noise mask to the latent so sampling "
                             "will only happen within the mask. Might improve results or "
                             "completely break things depending on the model.")

    class Outputs(NodeOutputs):
        positive: Conditioning = Output()
        negative: Conditioning = Output()
        latent: Latent = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        vae = part(self.vae, "vae", "vae")
        pixels, mask = crop_to_eight(image_tensor(self.pixels), mask_tensor(self.mask))
        concat = vae_encode(ctx, vae, greyed_out(pixels, mask))
        original = vae_encode(ctx, vae, pixels)
        extra = {"concat_latent_image": concat, "concat_mask": mask}
        return self.Outputs(
            positive=[[embeds, {**info, **extra}] for embeds, info in self.positive],
            negative=[[embeds, {**info, **extra}] for embeds, info in self.negative],
            latent=latent(original, noise_mask=mask if self.noise_mask else None))


MAX_RESOLUTION = 16384


@node("CLIPTextEncodeSDXL", category="advanced/conditioning",
      display_name="CLIPTextEncodeSDXL")
class CLIPTextEncodeSDXL(Node):
    """SDXL's two prompts and size conditioning: ``text_g`` goes to CLIP-G, ``text_l`` to
    CLIP-L; the six sizes tell the UNet the picture's original size, crop and target."""

    clip: ClipPart = Input()
    width: int = Input(1024, min=0, max=MAX_RESOLUTION)
    height: int = Input(1024, min=0, max=MAX_RESOLUTION)
    crop_w: int = Input(0, min=0, max=MAX_RESOLUTION)
    crop_h: int = Input(0, min=0, max=MAX_RESOLUTION)
    target_width: int = Input(1024, min=0, max=MAX_RESOLUTION)
    target_height: int = Input(1024, min=0, max=MAX_RESOLUTION)
    text_g: str = Input(multiline=True)
    text_l: str = Input(multiline=True)

    class Outputs(NodeOutputs):
        CONDITIONING: Conditioning = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        clip = part(self.clip, "clip", "clip")
        encoded = host(ctx, clip).call("encode_text_sdxl", self.text_g, self.text_l,
                                       **patches(clip))
        # The sizes are plain numbers: added here rather than sent to the host and back.
        sizes = {"width": self.width, "height": self.height, "crop_w": self.crop_w,
                 "crop_h": self.crop_h, "target_width": self.target_width,
                 "target_height": self.target_height}
        return self.Outputs(CONDITIONING=[[embeds, {**info, **sizes}]
                                          for embeds, info in encoded])
