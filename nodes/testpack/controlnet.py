"""A tiny SD 1.x ControlNet as ComfyUI users have them: one ``control_v11p_sd15_*``-style
``.safetensors`` file in the original ControlNet (cldm) key layout, for the tiny
single-file checkpoint's UNet (``checkpoint.tiny_sd1_pipeline``).

The cldm layout is the UNet's encoder in LDM names (``control_model.input_blocks.*``,
``middle_block.*``, ``time_embed.*``) plus the ControlNet's own parts: the hint encoder
(``input_hint_block.N``, convolutions at even N with SiLUs between), one zero convolution
per skip connection (``zero_convs.N.0``) and one after the middle block
(``middle_block_out.0``). The names are the exact inverse of diffusers' own conversion
(``single_file_utils.convert_controlnet_checkpoint``), so loading the file back with
``ControlNetModel.from_single_file`` gives the same tensors bit for bit. Its diffusers
config.json goes beside the file, where the ControlNet loader looks first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.backends.layout import ldm_name

if TYPE_CHECKING:
    import torch

PREFIX = "control_model."


def tiny_controlnet(seed: int = 3) -> Any:
    """A ControlNetModel for the tiny SD 1.x UNet (its encoder's weights copied, as
    ``from_unet`` does), every parameter shifted by seeded noise. A fresh ControlNet's
    output convolutions are zero, so it would change nothing and no test could fail."""
    import torch
    from diffusers import ControlNetModel

    from nodes.testpack.checkpoint import tiny_sd1_pipeline

    net = ControlNetModel.from_unet(tiny_sd1_pipeline().unet)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            # The zero convolutions get a larger push: their output is the whole effect.
            size = 0.1 if name.startswith(("controlnet_down_blocks", "controlnet_mid_block",
                                           "controlnet_cond_embedding.conv_out")) else 0.02
            parameter.add_(torch.randn(parameter.shape, generator=generator) * size)
    return net.eval()


def _cldm_name(key: str, per_block: int, hint_blocks: int) -> str:
    """One ControlNet parameter's cldm name (without ``control_model.``)."""
    module, _, param = key.rpartition(".")
    if module == "controlnet_cond_embedding.conv_in":
        return f"input_hint_block.0.{param}"
    if module == "controlnet_cond_embedding.conv_out":
        return f"input_hint_block.{2 * (hint_blocks + 1)}.{param}"
    if found := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)", module):
        return f"input_hint_block.{2 * (int(found[1]) + 1)}.{param}"
    if found := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
        return f"zero_convs.{found[1]}.0.{param}"
    if module == "controlnet_mid_block":
        return f"middle_block_out.0.{param}"
    # The encoder: the UNet's own LDM names (a ControlNet has no up blocks to number).
    return ldm_name(key, per_block, {})


def to_cldm(net: Any) -> dict[str, torch.Tensor]:
    """The ControlNet's state dict in cldm names under ``control_model.``, every tensor its
    own contiguous copy (safetensors refuses tensors that share memory)."""
    state = net.state_dict()
    per_block = net.config["layers_per_block"] + 1
    hint_blocks = len(net.controlnet_cond_embedding.blocks)
    return {PREFIX + _cldm_name(key, per_block, hint_blocks): value.detach().clone().contiguous()
            for key, value in state.items()}


def save_controlnet(net: Any, path: Path) -> Path:
    """Write the ControlNet to ``path`` (cldm layout) with its config.json beside it."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(to_cldm(net), str(path), metadata={"format": "pt"})
    net.save_config(str(path.parent))
    return path


def build_tiny_controlnet(path: Path, seed: int = 3) -> Path:
    """Build the tiny ControlNet and save it as ``path`` (config.json beside it)."""
    return save_controlnet(tiny_controlnet(seed), path)
