"""The names a Stable Diffusion UNet's weights have in diffusers and in the original
CompVis/LDM layout (``input_blocks.N``, ``middle_block``, ``output_blocks.N``).

diffusers converts LDM names to its own when it loads a single file; this is the other
direction, the exact inverse of that conversion (``single_file_utils``'s
``convert_ldm_unet_checkpoint``). Files in the LDM layout name UNet modules this way:
single-file checkpoints, kohya's SDXL LoRAs (``lora_unet_input_blocks_4_1_...``),
ControlNets. Attention blocks keep their inner names in both layouts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_LAYERS = {  # the names outside any block (DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"])
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0",
           "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1",
           "conv_shortcut": "skip_connection"}


def _resnet(rest: str) -> str:
    name, param = rest.split(".", 1)
    return f"{_RESNET[name]}.{param}"


def ldm_name(key: str, per_block: int, upsampler_slot: dict[int, int]) -> str:
    """One UNet parameter's LDM name. LDM numbers the blocks flat: ``input_blocks.0`` is
    conv_in, then per level ``per_block - 1`` (resnet, attention) pairs and a downsampler;
    ``output_blocks`` has ``per_block`` pairs per level, the upsampler riding in the last."""
    module, _, param = key.rpartition(".")
    if module in _LAYERS:
        return f"{_LAYERS[module]}.{param}"
    if found := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        side, level, part, layer, rest = found.groups()
        flat = int(level) * per_block + int(layer)
        blocks = f"input_blocks.{flat + 1}" if side == "down" else f"output_blocks.{flat}"
        return f"{blocks}.0.{_resnet(rest)}" if part == "resnets" else f"{blocks}.1.{rest}"
    if found := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
        return f"input_blocks.{(int(found[1]) + 1) * per_block}.0.op.{found[2]}"
    if found := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
        level = int(found[1])
        return (f"output_blocks.{level * per_block + per_block - 1}."
                f"{upsampler_slot[level]}.conv.{found[2]}")
    if found := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(found[1])}.{_resnet(found[2])}"
    if found := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{found[1]}"
    raise KeyError(f"no LDM name for the UNet parameter {key!r}")


def ldm_names(keys: Iterable[str], config: Any, strict: bool = True) -> dict[str, str]:
    """diffusers name -> LDM name for each of a UNet's parameter names (its ``config``
    gives the blocks per level and the up blocks). Not ``strict``: names with no LDM
    twin are left out instead of raising KeyError."""
    keys = list(keys)
    per_block = config["layers_per_block"] + 1
    # An up level's upsampler follows its attention when it has one (slot 2), else slot 1.
    upsampler_slot = {level: 2 if any(k.startswith(f"up_blocks.{level}.attentions.")
                                      for k in keys) else 1
                      for level in range(len(config["up_block_types"]))}
    names = {}
    for key in keys:
        try:
            names[key] = ldm_name(key, per_block, upsampler_slot)
        except KeyError:
            if strict:
                raise
    return names
