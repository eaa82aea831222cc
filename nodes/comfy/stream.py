"""One streamed call into a model host, its steps reported as the node's progress."""

from __future__ import annotations

from typing import Any

from engine.sdk import NodeContext
from nodes.comfy.value import Component

# VAELoader's identity VAE: pictures are their own "latents" (ComfyUI's pixel_space).
PIXEL_SPACE = "pixel_space"


def host(ctx: NodeContext, component: Component) -> Any:
    return ctx.model(component.kind, component.model)


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
    """Stream ``method`` from the host; returns the final update's ``result`` value. Step
    updates become progress (with the latest preview); a cancelled run stops the host."""
    final: Any = None
    stream = handle.stream(method, **call)
    try:
        for batch in stream:
            steps = [u for u in batch if "step" in u]
            for update in batch:
                if result in update:
                    final = update[result]
            if steps:
                previews = [u["preview"] for u in steps if u.get("preview")]
                ctx.progress(steps[-1]["step"], steps[-1]["total"],
                             preview=previews[-1] if previews else None)
    finally:
        stream.close()
    if final is None:
        raise RuntimeError(f"model {handle.id} returned no {result}")
    return final
