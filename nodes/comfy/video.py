"""ComfyUI's image-to-video nodes (Stable Video Diffusion) on the video model's host.

ImageOnlyCheckpointLoader names an installed video model (kind "video"); its MODEL,
CLIP_VISION and VAE are handles to that one resident pipeline (nodes.backends.svd does
the work), so KSampler and VAEDecode run on it exactly as they do on an SD checkpoint.
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
from nodes.comfy.conditioning import Conditioning, Latent
from nodes.comfy.folder import refused_name
from nodes.comfy.loader import ModelPart, VaePart, part
from nodes.comfy.resample import upscale
from nodes.comfy.stream import host
from nodes.comfy.value import MAX_RESOLUTION, Component, ImageTensor, image_tensor, latent

VIDEO_KIND = "video"

ClipVisionPart = Annotated[Any, Port("CLIP_VISION")]


def installed_video_models() -> list[str]:
    store = ModelStore(get_settings().models_dir)
    return [m.id for m in store.list() if m.kind == VIDEO_KIND]


def check_video_model(name: str) -> None:
    """Raises ModelNotFoundError, listing what is installed, unless ``name`` is a video
    model."""
    store = ModelStore(get_settings().models_dir)
    try:
        manifest = store.get(name)
    except ModelNotFoundError:
        manifest = None
    if manifest is None or manifest.kind != VIDEO_KIND:
        raise ModelNotFoundError(f"ckpt_name: {name!r} not in {installed_video_models()}")


@node("ImageOnlyCheckpointLoader", category="loaders/video_models",
      display_name="Image Only Checkpoint Loader (img2vid model)")
class ImageOnlyCheckpointLoader(Node):
    """Loads an image-to-video checkpoint (SVD): its diffusion model, its CLIP vision
    encoder (no text encoder) and its VAE."""

    ckpt_name: str = Input(options_from="models:video",
                           description="The image-to-video model to load.")

    class Outputs(NodeOutputs):
        MODEL: ModelPart = Output()
        CLIP_VISION: ClipVisionPart = Output()
        VAE: VaePart = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "ckpt_name", check_video_model)

    def run(self, ctx: NodeContext) -> Outputs:
        check_video_model(self.ckpt_name)
        ctx.model(VIDEO_KIND, self.ckpt_name)  # resolves now: a missing model fails here
        return self.Outputs(**{
            name: Component(model=self.ckpt_name, kind=VIDEO_KIND, part=piece)
            for name, piece in (("MODEL", "unet"), ("CLIP_VISION", "clip_vision"),
                                ("VAE", "vae"))})


@node("SVD_img2vid_Conditioning", category="conditioning/video_models",
      display_name="SVD_img2vid_Conditioning")
class SVD_img2vid_Conditioning(Node):  # noqa: N801 - ComfyUI's class name
    """Conditions SVD on a still: its CLIP-vision embedding guides every frame, its latent
    is concatenated to every frame; the latent to sample is ``video_frames`` empty frames."""

    clip_vision: ClipVisionPart = Input()
    init_image: ImageTensor = Input()
    vae: VaePart = Input()
    width: int = Input(1024, min=16, max=MAX_RESOLUTION, step=8)
    height: int = Input(576, min=16, max=MAX_RESOLUTION, step=8)
    video_frames: int = Input(14, min=1, max=4096)
    motion_bucket_id: int = Input(127, min=1, max=1023)
    fps: int = Input(6, min=1, max=1024)
    augmentation_level: float = Input(0.0, min=0.0, max=10.0, step=0.01)

    class Outputs(NodeOutputs):
        positive: Conditioning = Output()
        negative: Conditioning = Output()
        latent: Latent = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        import torch

        image = image_tensor(self.init_image)
        vision = host(ctx, part(self.clip_vision, "clip_vision", "clip_vision"))
        # image_embeds with a leading axis: the images of the batch are the tokens (1×B×D)
        pooled = vision.call("clip_vision_encode", image).unsqueeze(0)
        pixels = upscale(image.movedim(-1, 1), self.width, self.height, "bilinear",
                         "center").movedim(1, -1)[..., :3]
        if self.augmentation_level > 0:
            # In 0..1 space, from the unseeded global RNG, as ComfyUI adds it (twice
            # diffusers' noise_aug_strength, which applies in -1..1 space).
            pixels = pixels + torch.randn_like(pixels) * self.augmentation_level
        encoded = host(ctx, part(self.vae, "vae", "vae")).call("vae_encode", pixels)
        settings = {"motion_bucket_id": self.motion_bucket_id, "fps": self.fps,
                    "augmentation_level": self.augmentation_level}
        return self.Outputs(
            positive=[[pooled, {**settings, "concat_latent_image": encoded}]],
            negative=[[torch.zeros_like(pooled),
                       {**settings, "concat_latent_image": torch.zeros_like(encoded)}]],
            latent=latent(torch.zeros([self.video_frames, 4, self.height // 8,
                                       self.width // 8])))


@node("VideoLinearCFGGuidance", category="sampling/video_models",
      display_name="VideoLinearCFGGuidance")
class VideoLinearCFGGuidance(Node):
    """Guidance ramps over the frames: the first frame gets ``min_cfg``, the last the
    KSampler's cfg, linearly in between (diffusers' min/max_guidance_scale)."""

    model: ModelPart = Input()
    min_cfg: float = Input(1.0, min=0.0, max=100.0, step=0.5)

    class Outputs(NodeOutputs):
        MODEL: ModelPart = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        unet = part(self.model, "unet", "model")
        return self.Outputs(MODEL=unet.model_copy(update={"min_cfg": float(self.min_cfg)}))
