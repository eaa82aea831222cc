"""Sampler and scheduler names (ComfyUI's, which users know) mapped to diffusers
schedulers, and cheap latent previews for progress events."""

from __future__ import annotations

import base64
import io
from typing import Any

from nodes.backends.ksampler import SAMPLERS as COMFY_SAMPLERS

# ComfyUI sampler name -> (diffusers scheduler class, extra config)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "uni_pc": ("UniPCMultistepScheduler", {}),
}
# ComfyUI's own samplers (nodes.backends.ksampler) draw text-to-image pictures exactly as
# its KSampler does; the rest map to diffusers schedulers.
SAMPLER_NAMES = ["default", *dict.fromkeys([*COMFY_SAMPLERS, *SAMPLERS])]
# "normal" keeps the sampler's own sigma spacing; "karras" uses Karras et al.'s.
SCHEDULER_NAMES = ["normal", "karras"]

# SD 1.x/2.x latent channels -> RGB, a linear fit good enough for a thumbnail.
_LATENT_RGB = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
               [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]


def scheduler_for(base: Any, sampler: str, scheduler: str) -> Any:
    """A scheduler instance for ``sampler``/``scheduler`` built from the pipeline's own
    scheduler config, so the model's beta schedule and prediction type are kept."""
    import diffusers

    if sampler == "default" and scheduler == "normal":
        return base
    class_name, extra = SAMPLERS.get(sampler, (type(base).__name__, {}))
    config = dict(base.config)
    config.update(extra)
    if scheduler == "karras":
        config["use_karras_sigmas"] = True
    return getattr(diffusers, class_name).from_config(config)


def latent_preview(latents: Any, size: int = 64) -> str | None:
    """A small JPEG data URL of the first latent; None for latents that are not 4-channel."""
    import torch
    from PIL import Image

    if latents is None or latents.ndim != 4 or latents.shape[1] != 4:
        return None
    factors = torch.tensor(_LATENT_RGB, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents[0].float().cpu(), factors)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels, "RGB")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
