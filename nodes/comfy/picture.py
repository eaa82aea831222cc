"""ComfyUI's image operations on IMAGE tensors: resize, invert, pad for outpainting and
masked compositing.

Inputs may be tensors or PIL images (HomePilot's own nodes pass PIL images on IMAGE
ports); outputs are always ComfyUI tensors (B×H×W×C, 0..1). No node changes a tensor it
received: cached outputs are shared between runs and branches.
"""

from __future__ import annotations

import math
from typing import Any

from engine.sdk import Input, Node, NodeContext, NodeOutputs, node
from nodes.comfy.resample import CROP_METHODS, IMAGE_METHODS, upscale
from nodes.comfy.value import (
    MAX_RESOLUTION,
    ImageTensor,
    MaskTensor,
    image_tensor,
    mask_tensor,
)


def _resized(image: Any, width: int, height: int, method: str, crop: str) -> Any:
    """An IMAGE resized through ``upscale`` (which works on N×C×H×W)."""
    return upscale(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


@node("ImageScale", category="image/upscaling", display_name="Upscale Image")
class ImageScale(Node):
    """Resize pictures to width × height.

    0 for one side keeps the aspect ratio; 0 for both passes the picture through.
    lanczos goes through 8 bits, as in ComfyUI, so it quantises.
    """

    image: ImageTensor = Input(description="the pictures to resize")
    upscale_method: str = Input("nearest-exact", choices=IMAGE_METHODS,
                                description="the resampling filter")
    width: int = Input(512, min=0, max=MAX_RESOLUTION, step=1,
                       description="target width; 0 follows the height")
    height: int = Input(512, min=0, max=MAX_RESOLUTION, step=1,
                        description="target height; 0 follows the width")
    crop: str = Input("disabled", choices=CROP_METHODS,
                      description="center: cut the sides to the new aspect ratio first")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor

    def run(self, ctx: NodeContext) -> Outputs:
        image = image_tensor(self.image)
        width, height = self.width, self.height
        if width == 0 and height == 0:
            return self.Outputs(IMAGE=image)
        if width == 0:
            width = max(1, round(image.shape[2] * height / image.shape[1]))
        elif height == 0:
            height = max(1, round(image.shape[1] * width / image.shape[2]))
        return self.Outputs(IMAGE=_resized(image, width, height, self.upscale_method,
                                           self.crop))


@node("ImageScaleBy", category="image/upscaling", display_name="Upscale Image By")
class ImageScaleBy(Node):
    """Resize pictures by a factor: each side becomes round(side × scale_by)."""

    image: ImageTensor = Input(description="the pictures to resize")
    upscale_method: str = Input("nearest-exact", choices=IMAGE_METHODS,
                                description="the resampling filter")
    scale_by: float = Input(1.0, min=0.01, max=8.0, step=0.01,
                            description="1 keeps the size")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor

    def run(self, ctx: NodeContext) -> Outputs:
        image = image_tensor(self.image)
        width = round(image.shape[2] * self.scale_by)
        height = round(image.shape[1] * self.scale_by)
        if width < 1 or height < 1:
            raise ValueError(f"scaling {image.shape[2]}x{image.shape[1]} by {self.scale_by:g} "
                             f"gives {width}x{height}; a side must stay at least 1 pixel")
        return self.Outputs(IMAGE=_resized(image, width, height, self.upscale_method,
                                           "disabled"))


@node("ImageInvert", category="image", display_name="Invert Image")
class ImageInvert(Node):
    """The negative: 1 − value on every channel (alpha included, as in ComfyUI)."""

    image: ImageTensor = Input(description="the pictures to invert")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(IMAGE=1.0 - image_tensor(self.image))


def feather(height: int, width: int, left: int, top: int, right: int, bottom: int,
            feathering: int) -> Any:
    """ImagePadForOutpaint's mask over the original picture (height × width): 0 inside,
    rising as ((f − d) / f)² within ``feathering`` pixels of each padded side, where d
    counts from 0 at the side's first row or column. No feathering when 2f does not fit."""
    import torch

    inside = torch.zeros((height, width), dtype=torch.float32)
    if not (feathering > 0 and feathering * 2 < height and feathering * 2 < width):
        return inside
    rows = torch.arange(height, dtype=torch.float64)[:, None]
    cols = torch.arange(width, dtype=torch.float64)[None, :]
    # A side without padding counts as far away (the full size), so it never feathers.
    far_rows, far_cols = torch.full_like(rows, height), torch.full_like(cols, width)
    distance = torch.minimum(
        torch.minimum(rows if top else far_rows, height - rows if bottom else far_rows),
        torch.minimum(cols if left else far_cols, width - cols if right else far_cols))
    ramp = ((feathering - distance) / feathering) ** 2
    return torch.where(distance < feathering, ramp, 0.0).to(torch.float32)


@node("ImagePadForOutpaint", category="image", display_name="Pad Image for Outpainting")
class ImagePadForOutpaint(Node):
    """Grow the canvas by the given margins for outpainting.

    The new area is mid-grey (0.5) and the mask is 1 there; inside the original the mask is
    0, except for a ``feathering`` pixel fade along the padded sides so the seam blends.
    """

    image: ImageTensor = Input(description="the pictures to pad")
    left: int = Input(0, min=0, max=MAX_RESOLUTION, step=8, description="pixels added left")
    top: int = Input(0, min=0, max=MAX_RESOLUTION, step=8, description="pixels added on top")
    right: int = Input(0, min=0, max=MAX_RESOLUTION, step=8, description="pixels added right")
    bottom: int = Input(0, min=0, max=MAX_RESOLUTION, step=8,
                        description="pixels added at the bottom")
    feathering: int = Input(40, min=0, max=MAX_RESOLUTION, step=1,
                            description="fade of the mask into the original, in pixels")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor
        MASK: MaskTensor

    def run(self, ctx: NodeContext) -> Outputs:
        import torch

        image = image_tensor(self.image)
        batch, height, width, channels = image.shape
        canvas = torch.full((batch, height + self.top + self.bottom,
                             width + self.left + self.right, channels), 0.5)
        canvas[:, self.top:self.top + height, self.left:self.left + width] = image
        mask = torch.ones(canvas.shape[1:3], dtype=torch.float32)
        mask[self.top:self.top + height, self.left:self.left + width] = feather(
            height, width, self.left, self.top, self.right, self.bottom, self.feathering)
        # One mask for the whole batch (1×H×W), as ComfyUI returns it.
        return self.Outputs(IMAGE=canvas, MASK=mask.unsqueeze(0))


def _to_batch(tensor: Any, size: int) -> Any:
    """The first ``size`` items, repeating the batch as often as needed (ComfyUI's
    repeat_to_batch_size)."""
    if tensor.shape[0] > size:
        return tensor[:size]
    if tensor.shape[0] < size:
        times = math.ceil(size / tensor.shape[0])
        return tensor.repeat(times, *([1] * (tensor.ndim - 1)))[:size]
    return tensor


@node("ImageCompositeMasked", category="image", display_name="ImageCompositeMasked")
class ImageCompositeMasked(Node):
    """Lay ``source`` over ``destination`` with its top-left corner at (x, y).

    The mask (default: all ones) is stretched to the source's size and says how much of
    the source covers the destination. What falls outside the destination is cut off; the
    result has the destination's size.
    """

    destination: ImageTensor = Input(description="the pictures underneath")
    source: ImageTensor = Input(description="the pictures laid on top")
    x: int = Input(0, min=0, max=MAX_RESOLUTION, step=1, description="source's left edge")
    y: int = Input(0, min=0, max=MAX_RESOLUTION, step=1, description="source's top edge")
    resize_source: bool = Input(False, description="stretch the source to the destination")
    mask: MaskTensor = Input(optional=True, description="1 = source, 0 = destination")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor

    def run(self, ctx: NodeContext) -> Outputs:
        import torch
        import torch.nn.functional as F  # noqa: N812 (torch's own spelling)

        destination = image_tensor(self.destination).movedim(-1, 1).clone()
        source = image_tensor(self.source).movedim(-1, 1).to(destination.device)
        if source.shape[1] > destination.shape[1]:  # RGBA onto RGB: the alpha is dropped
            source = source[:, :destination.shape[1]]
        elif source.shape[1] < destination.shape[1]:
            # RGB onto RGBA (ComfyUI fails here): the source counts as opaque.
            missing = destination.shape[1] - source.shape[1]
            source = torch.cat([source, source.new_ones(
                (source.shape[0], missing, *source.shape[2:]))], dim=1)
        if self.resize_source:
            source = F.interpolate(source, size=destination.shape[2:], mode="bilinear")
        source = _to_batch(source, destination.shape[0])
        _, _, height, width = source.shape
        if self.mask is None:
            mask = torch.ones_like(source)
        else:
            mask = mask_tensor(self.mask).to(destination.device)
            mask = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]),
                                 size=(height, width), mode="bilinear")
            mask = _to_batch(mask, source.shape[0])
        # Clip to the destination: the source's right and bottom parts may fall outside.
        left, top = min(self.x, destination.shape[3]), min(self.y, destination.shape[2])
        visible_w = min(width, destination.shape[3] - left)
        visible_h = min(height, destination.shape[2] - top)
        mask = mask[:, :, :visible_h, :visible_w]
        region = destination[:, :, top:top + visible_h, left:left + visible_w]
        destination[:, :, top:top + visible_h, left:left + visible_w] = (
            mask * source[:, :, :visible_h, :visible_w] + (1.0 - mask) * region)
        return self.Outputs(IMAGE=destination.movedim(1, -1))
