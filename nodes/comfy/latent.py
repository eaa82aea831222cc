"""ComfyUI's latent nodes: empty latents, latent resizing and the inpainting noise mask.

A LATENT is a dict (``value.latent``); nodes return a new dict and never change the one
they got, because cached outputs are shared between runs and branches.
"""

from __future__ import annotations

from typing import Any

from engine.sdk import Input, Node, NodeContext, NodeOutputs, Output, node
from nodes.comfy.resample import CROP_METHODS, LATENT_METHODS, upscale
from nodes.comfy.value import MAX_RESOLUTION, MaskTensor, latent, mask_tensor

# The smallest side LatentUpscale resizes to, in pixels (ComfyUI clamps to it).
MIN_UPSCALE_SIDE = 64


def _zeros(batch_size: int, channels: int, width: int, height: int) -> dict[str, Any]:
    import torch

    # Floor division, as ComfyUI: a width that is not a multiple of 8 loses its remainder.
    return latent(torch.zeros([batch_size, channels, height // 8, width // 8]))


def _samples(value: Any) -> Any:
    if not isinstance(value, dict) or "samples" not in value:
        raise TypeError(f"expected a LATENT (a dict with 'samples'), got {type(value).__name__}")
    return value["samples"]


@node("EmptyLatentImage", category="latent", display_name="Empty Latent Image")
class EmptyLatentImage(Node):
    """A batch of all-zero 4-channel latents (SD1/SDXL) for a picture of width × height."""

    width: int = Input(512, min=16, max=MAX_RESOLUTION, step=8,
                       description="picture width in pixels")
    height: int = Input(512, min=16, max=MAX_RESOLUTION, step=8,
                        description="picture height in pixels")
    batch_size: int = Input(1, min=1, max=4096, description="latents in the batch")

    class Outputs(NodeOutputs):
        LATENT: Any = Output(type="LATENT")

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(LATENT=_zeros(self.batch_size, 4, self.width, self.height))


@node("EmptySD3LatentImage", category="latent/sd3", display_name="EmptySD3LatentImage")
class EmptySD3LatentImage(Node):
    """A batch of all-zero 16-channel latents (SD3, Flux) for a picture of width × height."""

    width: int = Input(1024, min=16, max=MAX_RESOLUTION, step=16,
                       description="picture width in pixels")
    height: int = Input(1024, min=16, max=MAX_RESOLUTION, step=16,
                        description="picture height in pixels")
    batch_size: int = Input(1, min=1, max=4096, description="latents in the batch")

    class Outputs(NodeOutputs):
        LATENT: Any = Output(type="LATENT")

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(LATENT=_zeros(self.batch_size, 16, self.width, self.height))


def upscale_target(width: int, height: int, latent_width: int, latent_height: int
                   ) -> tuple[int, int] | None:
    """LatentUpscale's pixel size for width × height asked of a latent of that size, or
    None when both are 0 (the latent passes through). A 0 side follows the aspect ratio;
    every side is at least 64 pixels."""
    if width == 0 and height == 0:
        return None
    if width == 0:
        height = max(MIN_UPSCALE_SIDE, height)
        width = max(MIN_UPSCALE_SIDE, round(latent_width * height / latent_height))
    elif height == 0:
        width = max(MIN_UPSCALE_SIDE, width)
        height = max(MIN_UPSCALE_SIDE, round(latent_height * width / latent_width))
    else:
        width, height = max(MIN_UPSCALE_SIDE, width), max(MIN_UPSCALE_SIDE, height)
    return width, height


@node("LatentUpscale", category="latent", display_name="Upscale Latent")
class LatentUpscale(Node):
    """Resize latents to the latent grid of a width × height picture.

    0 for one side keeps the aspect ratio; 0 for both passes the latent through. The
    noise mask, if any, is kept as it is (the sampler resizes it anyway).
    """

    samples: Any = Input(type="LATENT", description="the latents to resize")
    upscale_method: str = Input("nearest-exact", choices=LATENT_METHODS,
                                description="bislerp keeps the latent vectors' lengths")
    width: int = Input(512, min=0, max=MAX_RESOLUTION, step=8,
                       description="picture width in pixels; 0 follows the height")
    height: int = Input(512, min=0, max=MAX_RESOLUTION, step=8,
                        description="picture height in pixels; 0 follows the width")
    crop: str = Input("disabled", choices=CROP_METHODS,
                      description="center: cut the sides to the new aspect ratio first")

    class Outputs(NodeOutputs):
        LATENT: Any = Output(type="LATENT")

    def run(self, ctx: NodeContext) -> Outputs:
        samples = _samples(self.samples)
        target = upscale_target(self.width, self.height, samples.shape[-1], samples.shape[-2])
        if target is None:
            return self.Outputs(LATENT=self.samples)
        width, height = target
        resized = dict(self.samples)
        resized["samples"] = upscale(samples, width // 8, height // 8, self.upscale_method,
                                     self.crop)
        return self.Outputs(LATENT=resized)


@node("SetLatentNoiseMask", category="latent/inpaint", display_name="Set Latent Noise Mask")
class SetLatentNoiseMask(Node):
    """Attach a mask to latents: the sampler then changes only where the mask is 1.

    The mask is kept at its own resolution and values (not resized, not rounded): the
    sampler resizes it to the latent at every step.
    """

    samples: Any = Input(type="LATENT", description="the latents to mask")
    mask: MaskTensor = Input(description="1 = repaint, 0 = keep")

    class Outputs(NodeOutputs):
        LATENT: Any = Output(type="LATENT")

    def run(self, ctx: NodeContext) -> Outputs:
        _samples(self.samples)
        mask = mask_tensor(self.mask)
        masked = dict(self.samples)
        masked["noise_mask"] = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])
        return self.Outputs(LATENT=masked)
