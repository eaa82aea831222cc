"""ComfyUI's mask conversions: a channel of an image as a MASK, a MASK as a grey image,
and the inverted mask. Inputs may be tensors or PIL images."""

from __future__ import annotations

from engine.sdk import Input, Node, NodeContext, NodeOutputs, node
from nodes.comfy.value import ImageTensor, MaskTensor, image_tensor, mask_tensor

CHANNELS = ["red", "green", "blue", "alpha"]


@node("ImageToMask", category="mask", display_name="Convert Image to Mask")
class ImageToMask(Node):
    """One channel of the pictures as a mask (B×H×W)."""

    image: ImageTensor = Input(description="the pictures to take a channel from")
    channel: str = Input("red", choices=CHANNELS, description="the channel that becomes the mask")

    class Outputs(NodeOutputs):
        MASK: MaskTensor

    def run(self, ctx: NodeContext) -> Outputs:
        image = image_tensor(self.image)
        index = CHANNELS.index(self.channel)
        if index >= image.shape[-1]:
            # ComfyUI fails with an index error here; say what is missing instead.
            raise ValueError(f"the image has {image.shape[-1]} channels, so it has no "
                             f"{self.channel} channel")
        return self.Outputs(MASK=image[..., index])


@node("MaskToImage", category="mask", display_name="Convert Mask to Image")
class MaskToImage(Node):
    """The mask as a grey picture: the same value on red, green and blue."""

    mask: MaskTensor = Input(description="the mask to show")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor

    def run(self, ctx: NodeContext) -> Outputs:
        mask = mask_tensor(self.mask)
        grey = mask.reshape(-1, mask.shape[-2], mask.shape[-1], 1)
        # expand shares memory between the channels; clone so a consumer may write to it.
        return self.Outputs(IMAGE=grey.expand(-1, -1, -1, 3).clone())


@node("InvertMask", category="mask", display_name="InvertMask")
class InvertMask(Node):
    """1 − mask: what was selected is not, and the other way round."""

    mask: MaskTensor = Input(description="the mask to invert")

    class Outputs(NodeOutputs):
        MASK: MaskTensor

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(MASK=1.0 - mask_tensor(self.mask))
