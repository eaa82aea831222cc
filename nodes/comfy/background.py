"""ImageRemoveBackgroundRembg, the ComfyUI-rembg pack's node that HomePilot's background
workflows call, on HomePilot's own segmentation.

The pack runs rembg (a U²-Net download); here the subject is cut out with the same classic
GrabCut segmentation ``image.Background`` uses (``nodes.backends.retouch``), which needs no
model. The output is RGBA with the subject mask as alpha, so the workflows' chain
``ImageRemoveBackgroundRembg → ImageToMask(alpha) → InvertMask`` gives the background mask.
"""

from __future__ import annotations

from engine.sdk import Input, Node, NodeContext, NodeOutputs, node
from nodes.comfy.value import ImageTensor, image_tensor, pictures_of


@node("ImageRemoveBackgroundRembg", category="image",
      display_name="Image Remove Background (rembg)")
class ImageRemoveBackgroundRembg(Node):
    """Cuts each picture's subject out: RGBA whose alpha is the subject mask (GrabCut from a
    centred rectangle; transparent input pixels stay background). The colours are kept as
    they were, also where the alpha is 0."""

    image: ImageTensor = Input(description="the pictures whose background goes")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor

    def run(self, ctx: NodeContext) -> Outputs:
        import numpy as np
        import torch

        from nodes.backends import retouch  # OpenCV: loaded only when the node runs

        image = image_tensor(self.image)
        # GrabCut works on an 8-bit copy (with the alpha, when there is one); the colours
        # that come out are the input's own, not that copy's.
        masks = []
        for index, picture in enumerate(pictures_of(image), start=1):
            masks.append(np.asarray(retouch.foreground_mask(picture), dtype=np.float32) / 255.0)
            ctx.progress(index, image.shape[0])
        colour = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(
            -1, -1, -1, 3)
        alpha = torch.from_numpy(np.stack(masks))[..., None]
        return self.Outputs(IMAGE=torch.cat([colour, alpha], dim=-1))
