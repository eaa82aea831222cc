"""Picture repair nodes: upscale, enhance, background, outpaint.

Each uses a learned model on its host when one is installed and otherwise a classic
algorithm (``nodes.backends.retouch``); the ``method`` output always says which ran, so
an API can report "classic:lanczos+sharpen" rather than pretend.
"""

from __future__ import annotations

import math
from typing import Any

from PIL import Image as PILImage
from PIL import ImageChops

from engine.sdk import (
    Image,
    Input,
    ModelNotFoundError,
    Node,
    NodeContext,
    NodeOutputs,
    node,
)
from nodes.generate import (
    SEED_MAX,
    diffuse,
    fit_eight,
    inpaint_handle,
    paste_back,
    random_seed,
)
from nodes.image import MAX_SIDE

CLASSIC_UPSCALE = "classic:lanczos+sharpen"


def _retouch() -> Any:
    # OpenCV loads in a fraction of a second, which `homepilot validate` should not pay.
    from nodes.backends import retouch
    return retouch


def optional_model(ctx: NodeContext, kind: str, model: str) -> Any:
    """The named model's host, the default one of ``kind``, or None when none is
    installed and none was named (a named model that is missing is an error)."""
    try:
        return ctx.model(kind, model)
    except ModelNotFoundError:
        if model:
            raise
        return None


def upscale_with(ctx: NodeContext, image: PILImage.Image, scale: float, model: str,
                 tile: int = 256) -> tuple[PILImage.Image, str]:
    """``image`` enlarged ``scale`` times with the upscaler model (run as many times as its
    native factor needs, then resized to the exact size) or Lanczos + sharpening."""
    target = (round(image.width * scale), round(image.height * scale))
    if max(target) > MAX_SIDE:
        raise ValueError(f"the result would be {target[0]}x{target[1]}; the largest side "
                         f"allowed is {MAX_SIDE}")
    if scale == 1:
        return image.copy(), "none"
    handle = None if model == "lanczos" else optional_model(ctx, "upscaler", model)
    if handle is None:
        return _retouch().lanczos_upscale(image, scale), CLASSIC_UPSCALE
    native = int(handle.call("native_scale"))
    if native < 2:
        raise ValueError(f"upscaler {handle.id} does not enlarge (its native scale is "
                         f"{native}); pick an upscaler of 2x or more")
    result = image
    while result.width < target[0] or result.height < target[1]:
        # A full pass then a resize down keeps the most detail; but where the pass would
        # build a picture beyond MAX_SIDE, the last pass starts from just the pixels it
        # needs (a 4x model asked for 4096 px from 4000 px does not make 16000 px).
        need = (math.ceil(target[0] / native), math.ceil(target[1] / native))
        if max(result.size) * native > MAX_SIDE and result.width >= need[0] \
                and result.height >= need[1]:
            result = result.resize(need, PILImage.Resampling.LANCZOS)
        final: dict[str, Any] = {}
        for batch in handle.stream("upscale", result, tile=tile):
            for update in batch:
                if "image" in update:
                    final = update
            tiles = [u for u in batch if "tile" in u]
            if tiles:
                ctx.progress(tiles[-1]["tile"], tiles[-1]["total"])
        result = final["image"]
    if result.size != target:
        result = result.resize(target, PILImage.Resampling.LANCZOS)
    return result, handle.id


@node("image.Upscale", category="image/enhance", display_name="Upscale Image",
      model_kind="upscaler")
class Upscale(Node):
    """Enlarge a picture with a learned super-resolution model, or Lanczos without one.

    The model (ESRGAN/RRDBNet, Real-ESRGAN compact) runs in tiles; when none is installed
    (or ``lanczos`` is chosen) Lanczos resampling plus sharpening enlarges instead.
    """

    image: Image = Input(description="the picture to enlarge")
    scale: float = Input(2.0, min=1.0, max=8.0, step=0.1, description="the enlargement factor")
    model: str = Input("", options_from="models:upscaler", suggestions=["lanczos"],
                       description="upscaler id; empty = the default, 'lanczos' = classic")
    tile: int = Input(256, min=32, max=2048, description="tile side in input pixels")

    class Outputs(NodeOutputs):
        image: Image
        method: str
        learned: bool

    def run(self, ctx: NodeContext) -> Outputs:
        image, method = upscale_with(ctx, self.image, self.scale, self.model, self.tile)
        return self.Outputs(image=image, method=method,
                            learned=method not in (CLASSIC_UPSCALE, "none"))


@node("image.Enhance", category="image/enhance", display_name="Enhance Photo",
      model_kind="upscaler")
class Enhance(Node):
    """Improve a photo: tone and sharpness, a restoration of an old one, or faces.

    ``photo``: levels, contrast, light denoise, sharpening; ``restore``: strong denoise and
    speck removal first; ``faces``: detail on each detected face (OpenCV's Haar face
    detector). ``scale`` > 1 then enlarges (photo and restore only).
    """

    image: Image = Input(description="the photo to improve")
    mode: str = Input("photo", choices=["photo", "restore", "faces"],
                      description="photo: tone and sharpness; restore: old photos; faces")
    scale: int = Input(1, min=1, max=4, description="enlarge afterwards (photo, restore)")
    model: str = Input("", options_from="models:upscaler", suggestions=["lanczos"],
                       description="upscaler id for scale > 1; empty = the default")

    class Outputs(NodeOutputs):
        image: Image
        method: str
        faces: int

    def run(self, ctx: NodeContext) -> Outputs:
        faces = 0
        if self.mode == "faces":
            image, faces = _retouch().enhance_faces(self.image)
            return self.Outputs(image=image, method="opencv:haar-faces+detail", faces=faces)
        adjust = _retouch().restore if self.mode == "restore" else _retouch().enhance_photo
        ctx.progress(0, 2)
        image = adjust(self.image)
        ctx.progress(1, 2)
        image, upscaler = upscale_with(ctx, image, self.scale, self.model)
        method = f"classic:{self.mode}" + ("" if upscaler == "none" else f"+{upscaler}")
        return self.Outputs(image=image, method=method, faces=faces)


@node("image.Background", category="image/enhance", display_name="Edit Background",
      model_kind="inpaint")
class Background(Node):
    """Remove, replace or blur the background behind a picture's subject.

    ``remove`` cuts the subject out onto a transparent background, ``replace`` paints a
    new background from a prompt (needs a diffusion model), ``blur`` blurs it.
    """

    image: Image = Input(description="the picture whose background changes")
    action: str = Input("remove", choices=["remove", "replace", "blur"],
                        description="what to do with the background")
    prompt: str = Input("", multiline=True, description="the new background (replace)")
    negative_prompt: str = Input("blurry, low quality, distorted", multiline=True,
                                 description="what to keep out of it (replace)")
    blur_strength: int = Input(15, min=5, max=50, description="blur radius (blur)")
    steps: int = Input(25, min=1, max=150, description="denoising steps (replace)")
    cfg: float = Input(7.0, min=0.0, max=30.0, step=0.1,
                       description="how closely to follow the prompt (replace)")
    seed: int = Input(-1, min=-1, max=SEED_MAX, description="-1: random (replace)")
    model: str = Input("", options_from="models:inpaint,diffusion",
                       description="inpainting/diffusion model for replace")

    class Outputs(NodeOutputs):
        image: Image
        has_alpha: bool
        method: str

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return random_seed(inputs) if inputs.get("action") == "replace" else None

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        if inputs.get("action") == "replace" and not str(inputs.get("prompt", "")).strip():
            return [("prompt", "replace needs a prompt describing the new background")]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        if self.action == "remove":
            image = _retouch().remove_background(self.image)
            return self.Outputs(image=image, has_alpha=True, method="classic:grabcut")
        if self.action == "blur":
            image = _retouch().blur_background(self.image, self.blur_strength)
            return self.Outputs(image=image, has_alpha=False, method="classic:grabcut+blur")
        background = ImageChops.invert(_retouch().foreground_mask(self.image))
        handle = inpaint_handle(ctx, self.model)
        source = fit_eight(self.image)
        result = diffuse(ctx, handle, "inpaint", image=source,
                         mask=background.resize(source.size, PILImage.Resampling.NEAREST),
                         prompt=self.prompt, negative_prompt=self.negative_prompt,
                         steps=self.steps, cfg=self.cfg, seed=self.seed, denoise=1.0)
        image = paste_back(self.image.convert("RGB"), result["images"][0], background)
        return self.Outputs(image=image, has_alpha=False, method=f"diffusion:{handle.id}")


@node("image.Outpaint", category="image/generate", display_name="Outpaint",
      model_kind="inpaint")
class Outpaint(Node):
    """Extend a picture by the given pixels on each side.

    The new area is painted by a diffusion model when one is installed (``method``
    "diffusion:<id>"), else filled from the picture's edges with OpenCV; the original
    pixels are kept exactly.
    """

    image: Image = Input(description="the picture to extend")
    left: int = Input(0, min=0, max=1024, description="px to add on the left")
    right: int = Input(0, min=0, max=1024, description="px to add on the right")
    top: int = Input(0, min=0, max=1024, description="px to add at the top")
    bottom: int = Input(0, min=0, max=1024, description="px to add at the bottom")
    prompt: str = Input("", multiline=True, description="what the new area shows")
    negative_prompt: str = Input("blurry, low quality, distorted, watermark", multiline=True,
                                 description="what to keep out of it")
    steps: int = Input(25, min=1, max=150, description="denoising steps")
    cfg: float = Input(7.0, min=0.0, max=30.0, step=0.1,
                       description="how closely to follow the prompt")
    seed: int = Input(-1, min=-1, max=SEED_MAX, description="-1: random")
    model: str = Input("", options_from="models:inpaint,diffusion", suggestions=["classic"],
                       description="diffusion model; 'classic' forces the OpenCV fill")

    class Outputs(NodeOutputs):
        image: Image
        method: str

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return random_seed(inputs)

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        sides = [inputs.get(s) for s in ("left", "right", "top", "bottom")]
        if all(isinstance(s, int) for s in sides) and not any(sides):
            return [(None, "extend at least one side by one pixel or more")]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        sides = (self.left, self.right, self.top, self.bottom)
        filled = _retouch().outpaint_fill(self.image, *sides)
        handle = None
        if self.model != "classic":
            try:
                handle = inpaint_handle(ctx, self.model)
            except ModelNotFoundError:
                if self.model:
                    raise
        if handle is None:
            return self.Outputs(image=filled, method="classic:opencv-telea")
        _, mask = _retouch().extend_canvas(self.image, *sides)
        # The OpenCV fill is the starting picture: the model refines plausible colours
        # instead of painting into grey.
        source = fit_eight(filled)
        result = diffuse(ctx, handle, "inpaint", image=source,
                         mask=mask.resize(source.size, PILImage.Resampling.NEAREST),
                         prompt=self.prompt, negative_prompt=self.negative_prompt,
                         steps=self.steps, cfg=self.cfg, seed=self.seed, denoise=1.0)
        image = paste_back(filled, result["images"][0], mask, feather=0)
        original = self.image.convert(image.mode)
        image.paste(original, (self.left, self.top))  # bit-exact original pixels
        return self.Outputs(image=image, method=f"diffusion:{handle.id}")
