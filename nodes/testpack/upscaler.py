"""Tiny random-weight upscalers, saved the way the public checkpoints are shipped."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: importing the test pack must not load torch
    from torch import nn


def build_tiny_upscaler(path: Path, seed: int = 0) -> Path:
    """Save a tiny RRDBNet x4 as a ``.pth`` in the BasicSR layout wrapped in
    ``params_ema``, as RealESRGAN_x4plus ships, so loading takes the real path."""
    import torch

    from nodes.backends.srnet import RRDBNet

    torch.manual_seed(seed)
    net = RRDBNet(in_ch=3, out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                  num_upsample=2)
    # Random convs all the way through give a near-black image; pass the input through the
    # main path instead so the output looks like an upscale (and tile seams would show),
    # with the random RRDB trunk adding texture on top.
    with torch.no_grad():
        for conv in (net.conv_first, net.conv_up1, net.conv_up2, net.conv_hr, net.conv_last):
            _near_identity(conv)
        net.conv_body.weight.mul_(0.5)
    return _save(path, {"params_ema": net.state_dict()})


def build_tiny_srvgg(path: Path, scale: int = 2, seed: int = 0) -> Path:
    """Save a tiny Real-ESRGAN compact net (PReLU) wrapped in ``params``, as
    realesr-general-x4v3 ships."""
    import torch

    from nodes.backends.srnet import SRVGGNetCompact

    torch.manual_seed(seed)
    net = SRVGGNetCompact(in_ch=3, out_ch=3, num_feat=8, num_conv=2, scale=scale)
    return _save(path, {"params": net.state_dict()})


def _near_identity(conv: nn.Conv2d, noise: float = 0.02) -> None:
    """Make a 3x3 conv copy channel c to channel c (for the channels both sides have),
    plus a little noise."""
    import torch

    weight, bias = conv.weight, conv.bias
    weight.copy_(torch.randn_like(weight) * noise)
    for channel in range(min(weight.shape[0], weight.shape[1])):
        weight[channel, channel, 1, 1] += 1.0
    if bias is not None:
        bias.zero_()


def _save(path: Path, state: dict[str, object]) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, str(path))
    return path
