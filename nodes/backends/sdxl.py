"""What an SDXL UNet reads beside the token embeddings: CLIP-G's pooled vector and six size
ids (``addition_embed_type == "text_time"``), taken from each CONDITIONING entry's dict."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodes.backends.ksampler import Conditioning

LATENT_RATIO = 8  # pixels per latent cell, as ComfyUI assumes for SDXL's default sizes


def time_ids(info: dict[str, Any], latent_height: int, latent_width: int) -> list[float]:
    """The six size ids in the UNet's order (h, w, crop_h, crop_w, target_h, target_w).
    Sizes the dict lacks (the plain CLIPTextEncode sets none) default as ComfyUI's sampler
    defaults them: the latent's size in pixels, crops 0, the target equal to the size."""
    width = info.get("width", latent_width * LATENT_RATIO)
    height = info.get("height", latent_height * LATENT_RATIO)
    return [float(v) for v in (height, width, info.get("crop_h", 0), info.get("crop_w", 0),
                               info.get("target_height", height),
                               info.get("target_width", width))]


def added_conditions(entries: list[Conditioning], x: Any, batch: int, device: str,
                     dtype: Any) -> dict[str, Any]:
    """``added_cond_kwargs`` for entries batched as the sampler batches them (entry after
    entry, ``batch`` rows each): ``text_embeds`` (pooled) and ``time_ids``."""
    import torch

    pooled, ids = [], []
    for entry in entries:
        vector = entry.extra.get("pooled_output")
        if vector is None:
            raise ValueError("an SDXL model needs the conditioning's pooled_output (CLIP-G's "
                             "projection), and this entry has none: was it encoded by "
                             "another model's CLIP?")
        vector = vector.float().reshape(-1, vector.shape[-1])
        pooled.append(vector.repeat(math.ceil(batch / vector.shape[0]), 1)[:batch])
        sizes = time_ids(entry.extra, x.shape[-2], x.shape[-1])
        ids.append(torch.tensor([sizes], dtype=torch.float32).repeat(batch, 1))
    # The ids stay float32 whatever the model's dtype: the UNet embeds them in float32
    # anyway, and half precision would round sizes above 2048 before it does.
    return {"text_embeds": torch.cat(pooled).to(device, dtype),
            "time_ids": torch.cat(ids).to(device)}
