"""Diffusion nodes on the model hosts: text to image, image to image, inpainting.

The nodes never load a model: they ask the context for the model's host and stream the
run from it (its progress becomes node_progress events, with a latent preview when asked).
Concurrent runs with the same settings share one batched pipeline call on the host.
"""

from __future__ import annotations

from typing import Any

from PIL import Image as PILImage
from PIL import ImageChops, ImageFilter

from engine.sdk import (
    ALWAYS,
    Image,
    Input,
    Json,
    Mask,
    ModelNotFoundError,
    Node,
    NodeContext,
    NodeOutputs,
    Output,
    node,
)
from nodes.backends.sampler import SAMPLER_NAMES, SCHEDULER_NAMES

SEED_MAX = 2**31 - 1
MIN_SIDE, MAX_SIDE = 64, 2048  # what diffusion nodes accept (TextToImage's own limits)


def random_seed(inputs: dict[str, Any]) -> Any:
    """Seed -1 draws a new picture every run, so such a node is never served from cache."""
    return ALWAYS if inputs.get("seed", -1) == -1 else None


def sides_of_eight(inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(side, f"{side} must be a multiple of 8 (got {inputs[side]})")
            for side in ("width", "height")
            if isinstance(inputs.get(side), int) and inputs[side] % 8]


def diffuse(ctx: NodeContext, handle: Any, method: str, key: str = "images",
            **call: Any) -> dict[str, Any]:
    """Stream one call from a model host, its steps reported as the node's progress (with
    the latest preview); returns the final update, the one holding ``key`` (a diffusion
    host's ``{"images", "seeds"}`` by default)."""
    final: dict[str, Any] = {}
    stream = handle.stream(method, **call)
    try:
        for batch in stream:
            for update in batch:
                if key in update:
                    final = update
            steps = [u for u in batch if "step" in u]
            if steps:
                previews = [u["preview"] for u in steps if u.get("preview")]
                # Raises when the run is cancelled: the finally below lets the host know.
                ctx.progress(steps[-1]["step"], steps[-1]["total"],
                             preview=previews[-1] if previews else None)
    finally:
        stream.close()
    if not final:
        raise RuntimeError(f"model {handle.id} returned no {key}")
    return final


def inpaint_handle(ctx: NodeContext, model: str) -> Any:
    """A dedicated inpainting model when one is installed (or named), else the text-to-image
    model, which diffusers can also inpaint with (less cleanly at the mask's edge)."""
    try:
        return ctx.model("inpaint", model)
    except ModelNotFoundError:
        return ctx.model("diffusion", model)


def fit_eight(image: PILImage.Image) -> PILImage.Image:
    """The image as a diffusion model takes it: both sides multiples of 8 (the latent
    grid), the short side at least ``MIN_SIDE`` (a UNet halves the latents three times)
    and the long side at most ``MAX_SIDE``, the aspect kept. Callers resize results back
    to the source's size."""
    scale = max(1.0, MIN_SIDE / min(image.size))
    scale = min(scale, MAX_SIDE / max(image.size))
    if min(image.size) * scale < MIN_SIDE - 0.5:
        raise ValueError(f"the picture is {image.width}x{image.height}: too narrow for "
                         f"diffusion (sides must be within {MAX_SIDE // MIN_SIDE}:1)")
    width = max(MIN_SIDE, round(image.width * scale) // 8 * 8)
    height = max(MIN_SIDE, round(image.height * scale) // 8 * 8)
    rgb = image.convert("RGB")
    return rgb if rgb.size == (width, height) else rgb.resize(
        (width, height), PILImage.Resampling.LANCZOS)


def paste_back(original: PILImage.Image, generated: PILImage.Image,
               mask: PILImage.Image, feather: int = 4) -> PILImage.Image:
    """``generated`` inside the mask over ``original``: pixels outside the mask stay
    exactly the original's; the edge fades inward over ``feather`` px so no seam shows."""
    generated = generated.convert("RGB").resize(original.size, PILImage.Resampling.LANCZOS)
    mask = mask.convert("L").resize(original.size, PILImage.Resampling.NEAREST)
    alpha = ImageChops.darker(mask, mask.filter(ImageFilter.GaussianBlur(feather))) \
        if feather else mask
    base = original.convert("RGBA") if original.mode == "RGBA" else original.convert("RGB")
    result = base.copy()
    result.paste(generated.convert(base.mode), (0, 0), alpha)
    return result


class _Sampling(Node):
    """Inputs every diffusion node shares."""

    prompt: str = Input(multiline=True, description="what the picture shows")
    negative_prompt: str = Input("", multiline=True, description="what to keep out of it")
    steps: int = Input(25, min=1, max=150, description="denoising steps")
    cfg: float = Input(7.0, min=0.0, max=30.0, step=0.1,
                       description="how closely to follow the prompt (guidance scale)")
    seed: int = Input(-1, min=-1, max=SEED_MAX, description="-1: random")
    batch_size: int = Input(1, min=1, max=4, description="pictures per run")
    sampler: str = Input("default", choices=SAMPLER_NAMES,
                         description="ComfyUI sampler name; default keeps the model's own")
    scheduler: str = Input("normal", choices=SCHEDULER_NAMES,
                           description="noise schedule; karras spreads steps differently")
    preview: bool = Input(False, description="send a small latent preview with each step")
    model: str = Input("", options_from="models:diffusion",
                       description="model id; empty picks the installed default")

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return random_seed(inputs)

    def sampling(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt,
                "steps": self.steps, "cfg": self.cfg, "seed": self.seed,
                "batch_size": self.batch_size, "sampler": self.sampler,
                "scheduler": self.scheduler, "preview": self.preview}


class DiffusionOutputs(NodeOutputs):
    images: Any = Output(type="IMAGE", is_list=True, description="one picture per batch item")
    seed: int = Output(description="the seed of the first picture")
    seeds: Json = Output(description="the seed of each picture")
    model: str = Output(description="the model that drew them")


@node("image.TextToImage", category="image/generate", display_name="Text to Image",
      model_kind="diffusion")
class TextToImage(_Sampling):
    """Draw pictures from a prompt with a Stable Diffusion-family model.

    The model runs on its host and reports every denoising step. Seed -1 picks one at
    random; the seeds used come back (image i of a batch uses seed + i).
    """

    width: int = Input(512, min=64, max=2048, step=8, description="a multiple of 8")
    height: int = Input(512, min=64, max=2048, step=8, description="a multiple of 8")

    class Outputs(DiffusionOutputs):
        pass

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return sides_of_eight(inputs)

    def run(self, ctx: NodeContext) -> DiffusionOutputs:
        handle = ctx.model("diffusion", self.model)
        result = diffuse(ctx, handle, "text_to_image", width=self.width, height=self.height,
                         **self.sampling())
        return self.Outputs(images=result["images"], seed=result["seeds"][0],
                                seeds=result["seeds"], model=handle.id)


@node("image.ImageToImage", category="image/generate", display_name="Image to Image",
      model_kind="diffusion")
class ImageToImage(_Sampling):
    """Redraw a picture following a prompt.

    ``denoise`` says how far from the source it may go (0 keeps it, 1 ignores it). The
    result has the source's size.
    """

    image: Image = Input(description="the source picture")
    denoise: float = Input(0.55, min=0.01, max=1.0, step=0.01,
                           description="how much may change: 0 keeps the source, 1 ignores it")

    class Outputs(DiffusionOutputs):
        pass

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        steps, denoise = inputs.get("steps"), inputs.get("denoise")
        # img2img runs steps x denoise of the schedule: none at all fails deep in diffusers.
        if isinstance(steps, int) and isinstance(denoise, (int, float)) and \
                int(steps * denoise) < 1:
            return [("denoise", f"{steps} steps at denoise {denoise} leave no denoising "
                                "step; raise steps or denoise")]
        return []

    def run(self, ctx: NodeContext) -> DiffusionOutputs:
        handle = ctx.model("diffusion", self.model)
        result = diffuse(ctx, handle, "image_to_image", image=fit_eight(self.image),
                         denoise=self.denoise, **self.sampling())
        size = self.image.size
        images = [i if i.size == size else i.resize(size, PILImage.Resampling.LANCZOS)
                  for i in result["images"]]
        return self.Outputs(images=images, seed=result["seeds"][0],
                                seeds=result["seeds"], model=handle.id)


@node("image.Inpaint", category="image/generate", display_name="Inpaint",
      model_kind="inpaint")
class Inpaint(_Sampling):
    """Repaint the masked part of a picture (mask white = repaint).

    Pixels outside the mask come back unchanged; the edge is blended ``feather`` px
    inward. Without an inpainting model the text-to-image model paints.
    """

    model: str = Input("", options_from="models:inpaint,diffusion",
                       description="inpainting (or text-to-image) model id; empty picks the "
                                   "installed default")
    image: Image = Input(description="the source picture")
    mask: Mask = Input(description="white where the picture is repainted")
    denoise: float = Input(1.0, min=0.01, max=1.0, step=0.01,
                           description="how much the masked part may change")
    grow: int = Input(0, min=0, max=256, description="widen the mask by this many px")
    feather: int = Input(4, min=0, max=64, description="px over which the edge blends")

    class Outputs(DiffusionOutputs):
        pass

    def run(self, ctx: NodeContext) -> DiffusionOutputs:
        mask = self.mask.convert("L").resize(self.image.size, PILImage.Resampling.NEAREST)
        if self.grow:
            mask = mask.filter(ImageFilter.MaxFilter(self.grow * 2 + 1))
        if not mask.getbbox():
            raise ValueError("the mask is empty: paint white where the picture should change")
        handle = inpaint_handle(ctx, self.model)
        source = fit_eight(self.image)
        result = diffuse(ctx, handle, "inpaint", image=source,
                         mask=mask.resize(source.size, PILImage.Resampling.NEAREST),
                         denoise=self.denoise, **self.sampling())
        images = [paste_back(self.image, i, mask, self.feather) for i in result["images"]]
        return self.Outputs(images=images, seed=result["seeds"][0],
                                seeds=result["seeds"], model=handle.id)
