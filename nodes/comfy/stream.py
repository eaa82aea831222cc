"""One streamed call into a model host, its steps reported as the node's progress."""

from __future__ import annotations

from typing import Any

from engine.sdk import NodeContext
from nodes.comfy.value import Component
from nodes.generate import diffuse

# VAELoader's identity VAE: pictures are their own "latents" (ComfyUI's pixel_space).
PIXEL_SPACE = "pixel_space"


def host(ctx: NodeContext, component: Component) -> Any:
    return ctx.model(component.kind, component.model)


def patches(component: Component) -> dict[str, Any]:
    """The ``loras`` keyword of a call using the part, only when it carries any: hosts
    that patch nothing (SVD's) never see the keyword."""
    return {"loras": [list(pair) for pair in component.loras]} if component.loras else {}


def vae_decode(ctx: NodeContext, vae: Component, samples: Any) -> Any:
    """Raw latents to an IMAGE on the VAE's host (pixel_space: the samples themselves)."""
    if vae.model == PIXEL_SPACE:
        return samples.float().clamp(0.0, 1.0).movedim(1, -1)
    return host(ctx, vae).call("vae_decode", samples)


def vae_encode(ctx: NodeContext, vae: Component, pixels: Any) -> Any:
    """An IMAGE to raw latents on the VAE's host (pixel_space: the RGB pixels)."""
    if vae.model == PIXEL_SPACE:
        return pixels[..., :3].movedim(-1, 1).contiguous()
    return host(ctx, vae).call("vae_encode", pixels)


def streamed(ctx: NodeContext, handle: Any, method: str, result: str, **call: Any) -> Any:
    """Stream ``method`` from the host (steps become progress; a cancelled run stops the
    host); returns the final update's ``result`` value."""
    return diffuse(ctx, handle, method, result, **call)[result]
