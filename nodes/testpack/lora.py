"""Tiny random LoRA files for a test pack pipeline, in the layouts LoRAs are published in.

The same seeded low-rank pairs are written three ways, so a test can check that each
layout patches the same weights by the same amounts:

- ``kohya``: ``lora_unet_<diffusers module, _ for .>`` / ``lora_te_<module>`` with
  ``lora_down``/``lora_up`` and ``alpha`` (sd-scripts' SD 1.x LoRAs);
- ``kohya_ldm``: the UNet's modules under their LDM names (sd-scripts' SDXL LoRAs);
- ``peft``: ``unet.<module>.lora_A/lora_B`` and ``text_encoder.<module>...`` without
  alpha (diffusers' own), the alpha/rank scale folded into ``lora_B``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodes.backends.layout import ldm_names

LAYOUTS = ("kohya", "kohya_ldm", "peft")
RANK = 2
ALPHA = 1.0
# Which layers get a pair: the attention projections (and SD 1's 1x1-conv proj_in, to
# cover a conv weight) in the UNet, two projections in each text encoder layer.
_UNET_LAYERS = ("attn1.to_q", "attn1.to_v", "attn2.to_k", "attn2.to_out.0", "proj_in")
_CLIP_LAYERS = ("self_attn.q_proj", "self_attn.v_proj")


def lora_pairs(unet: Any, text_encoder: Any, seed: int = 0) -> dict[tuple[str, str], tuple]:
    """(root, module) -> (up, down) for the chosen layers, seeded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    pairs = {}
    for root, model, layers in (("unet", unet, _UNET_LAYERS),
                                ("text_encoder", text_encoder, _CLIP_LAYERS)):
        for name, module in model.named_modules():
            if not name.endswith(layers) or not hasattr(module, "weight"):
                continue
            shape = module.weight.shape
            up = torch.randn((shape[0], RANK, *([1] * (len(shape) - 2))), generator=generator)
            down = torch.randn((RANK, *shape[1:]), generator=generator)
            pairs[(root, name)] = (up * 0.05, down * 0.05)
    return pairs


def write_lora(unet: Any, text_encoder: Any, path: Path, layout: str = "kohya",
               seed: int = 0) -> Path:
    """The seeded pairs saved in ``layout`` at ``path`` (.safetensors)."""
    import torch
    from safetensors.torch import save_file

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: one of {', '.join(LAYOUTS)}")
    ldm = ldm_names((name for name, _ in unet.named_parameters()), unet.config,
                    strict=False)
    tensors = {}
    for (root, name), (up, down) in lora_pairs(unet, text_encoder, seed).items():
        if root == "text_encoder" and not name.startswith("text_model."):
            # Published LoRAs name CLIP layers as transformers did before 5.6
            name = f"text_model.{name}"
        if layout == "peft":
            base = f"{root}.{name}"
            tensors[f"{base}.lora_A.weight"] = down
            tensors[f"{base}.lora_B.weight"] = up * (ALPHA / RANK)
            continue
        written = ldm[f"{name}.weight"].removesuffix(".weight") \
            if root == "unet" and layout == "kohya_ldm" else name
        prefix = "lora_unet_" if root == "unet" else "lora_te_"
        base = prefix + written.replace(".", "_")
        tensors[f"{base}.lora_down.weight"] = down
        tensors[f"{base}.lora_up.weight"] = up
        tensors[f"{base}.alpha"] = torch.tensor(ALPHA)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path
