"""Super-resolution networks that load the public checkpoint formats as they are shipped.

Two families cover most upscalers people download:

* ESRGAN / RRDBNet, in three key layouts: the original ESRGAN "sequential" layout
  (``model.0``, ``model.1.sub.N.RDB1.conv1.0``, ...; 4x-UltraSharp and most community
  models), the later ESRGAN repository layout (``RRDB_trunk``, ``upconv1``, ``HRconv``) and
  the BasicSR layout (``conv_first``, ``body.N.rdb1``, ``conv_up1``; RealESRGAN_x4plus).
  The older layouts are renamed to the BasicSR one, so one module serves them all.
* Real-ESRGAN's compact SRVGGNetCompact (``body.0`` ... ``body.K``; realesr-general-x4v3,
  realesr-animevideov3).

Every hyper-parameter (features, blocks, growth channels, channels, scale) is read from the
tensors' names and shapes, because checkpoints carry no config.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - the usual torch spelling

StateDict = dict[str, Tensor]

# Checkpoints saved by training code wrap the weights; BasicSR keeps both the raw and the
# EMA weights and its own inference prefers the EMA ones.
_WRAPPERS = ("params_ema", "params", "state_dict", "model", "net", "generator")


@dataclass
class SRModel:
    """A loaded upscaler: the module, its scale, its family and its image channels."""

    module: nn.Module
    scale: int
    arch: str  # "esrgan" | "srvgg"
    in_channels: int = 3
    out_channels: int = 3


# -- ESRGAN / RRDBNet ---------------------------------------------------------------------


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs; the block's output is scaled by 0.2 before the skip,
    which is what keeps a deep RRDB stack stable."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three residual dense blocks inside one more scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator with BasicSR parameter names.

    ``num_upsample`` nearest-x2 + conv stages give the network scale 2**num_upsample;
    ``unshuffle`` > 1 folds the input into channels first (Real-ESRGAN x2plus runs a x4
    body on a half-size input), so the overall scale is 2**num_upsample / unshuffle.
    """

    def __init__(self, in_ch: int, out_ch: int, num_feat: int, num_block: int,
                 num_grow_ch: int, num_upsample: int, unshuffle: int = 1) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        self.conv_first = nn.Conv2d(in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.num_upsample = num_upsample
        for index in range(1, num_upsample + 1):
            self.add_module(f"conv_up{index}", nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        x = _pad_to_multiple(x, self.unshuffle)
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for index in range(1, self.num_upsample + 1):
            conv = getattr(self, f"conv_up{index}")
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        scale = 2 ** self.num_upsample // self.unshuffle
        return out[..., :height * scale, :width * scale]


def _pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pixel-unshuffle needs sides divisible by its factor; replicate the edge to get there
    (the extra output is cropped again by the caller)."""
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    if not pad_h and not pad_w:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


_OLD_RDB = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_TOP = re.compile(r"^model\.(\d+)\.(weight|bias)$")
_MID_RDB = re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$")
_MID_NAMES = {"trunk_conv": "conv_body", "upconv1": "conv_up1", "upconv2": "conv_up2",
              "upconv3": "conv_up3", "HRconv": "conv_hr"}


def esrgan_old_to_new(state: Mapping[str, Tensor]) -> StateDict:
    """Rename an original-ESRGAN ``model.N`` state dict to BasicSR names.

    The old net was one flattened ``nn.Sequential``: 0 first conv, 1 the shortcut around
    the RRDB trunk (its last child the trunk conv), then for each x2 stage an Upsample, a
    conv and a LeakyReLU, then HR conv, LeakyReLU, last conv. Only convs hold weights, so
    the top-level indices after 1 are: the upsample convs, then conv_hr, then conv_last.
    """
    top = sorted({int(m.group(1)) for key in state if (m := _OLD_TOP.match(key))})
    tail = [index for index in top if index > 1]
    if not top or top[0] != 0 or len(tail) < 2:
        raise ValueError("ESRGAN state dict: expected model.0, model.1.sub... and at least "
                         f"two convs after the trunk; top-level convs seen: {top}")
    names = {0: "conv_first", tail[-2]: "conv_hr", tail[-1]: "conv_last"}
    for stage, index in enumerate(tail[:-2], start=1):
        names[index] = f"conv_up{stage}"
    trunk = re.compile(r"^model\.1\.sub\.(\d+)\.(weight|bias)$")
    new: StateDict = {}
    for key, value in state.items():
        if match := _OLD_RDB.match(key):
            block, rdb, conv, kind = match.groups()
            new[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif match := _OLD_TOP.match(key):
            new[f"{names[int(match.group(1))]}.{match.group(2)}"] = value
        elif match := trunk.match(key):
            new[f"conv_body.{match.group(2)}"] = value  # the trunk's closing conv
        else:
            raise ValueError(f"ESRGAN state dict: unexpected key {key!r} (ESRGAN+ or other "
                             "variants with extra layers are not supported)")
    return new


def esrgan_mid_to_new(state: Mapping[str, Tensor]) -> StateDict:
    """Rename the later ESRGAN repository layout (``RRDB_trunk``, ``HRconv``) to BasicSR."""
    new: StateDict = {}
    for key, value in state.items():
        if match := _MID_RDB.match(key):
            block, rdb, conv, kind = match.groups()
            new[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        else:
            prefix, _, kind = key.rpartition(".")
            new[f"{_MID_NAMES.get(prefix, prefix)}.{kind}"] = value
    return new


def _load_rrdb(state: StateDict) -> SRModel:
    first = state["conv_first.weight"]
    last = state["conv_last.weight"]
    num_feat, packed_in = int(first.shape[0]), int(first.shape[1])
    out_ch = int(last.shape[0])
    blocks = {int(m.group(1)) for key in state
              if (m := re.match(r"^body\.(\d+)\.rdb1\.conv1\.weight$", key))}
    if not blocks:
        raise ValueError("ESRGAN state dict has no body.N.rdb1.conv1.weight (no RRDB blocks)")
    num_grow_ch = int(state["body.0.rdb1.conv1.weight"].shape[0])
    num_upsample = sum(1 for key in state if re.match(r"^conv_up\d+\.weight$", key))
    unshuffle, in_ch = _unshuffle_factor(packed_in, out_ch)
    if 2 ** num_upsample % unshuffle:
        raise ValueError(f"ESRGAN: {num_upsample} x2 stages with a pixel-unshuffle of "
                         f"{unshuffle} do not give a whole scale")
    module = RRDBNet(in_ch, out_ch, num_feat, len(blocks), num_grow_ch, num_upsample,
                     unshuffle)
    _strict_load(module, state, "esrgan")
    return SRModel(module, 2 ** num_upsample // unshuffle, "esrgan", in_ch, out_ch)


def _unshuffle_factor(packed_in: int, out_ch: int) -> tuple[int, int]:
    """BasicSR's x2 / x1 models pixel-unshuffle a 3-channel input by 2 / 4, so their first
    conv sees 12 / 48 channels; any other mismatch is taken as a real channel count."""
    if packed_in != out_ch and packed_in % out_ch == 0:
        factor = math.isqrt(packed_in // out_ch)
        if factor * factor == packed_in // out_ch and factor in (2, 4):
            return factor, out_ch
    return 1, packed_in


# -- Real-ESRGAN compact ------------------------------------------------------------------


class SRVGGNetCompact(nn.Module):
    """A plain conv stack at low resolution, a pixel shuffle, and the nearest-upsampled
    input added back, so the net only learns the residual detail."""

    def __init__(self, in_ch: int, out_ch: int, num_feat: int, num_conv: int, scale: int,
                 act: str = "prelu") -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_ch, num_feat, 3, 1, 1),
                                   _activation(act, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act, num_feat)]
        layers.append(nn.Conv2d(num_feat, out_ch * scale * scale, 3, 1, 1))
        # A ModuleList (not Sequential) to keep the published ``body.N`` indices.
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def _activation(act: str, num_feat: int) -> nn.Module:
    if act == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


def _load_srvgg(state: StateDict) -> SRModel:
    convs = sorted(int(m.group(1)) for key, value in state.items()
                   if (m := re.match(r"^body\.(\d+)\.weight$", key)) and value.ndim == 4)
    if len(convs) < 2 or convs != list(range(0, convs[-1] + 1, 2)):
        raise ValueError(f"SRVGG state dict: expected convs at body.0, body.2, ...; "
                         f"seen at {convs}")
    first = state["body.0.weight"]
    num_feat, in_ch = int(first.shape[0]), int(first.shape[1])
    packed_out = int(state[f"body.{convs[-1]}.weight"].shape[0])
    # The input is added back after the shuffle, so out channels equal in channels.
    scale = math.isqrt(packed_out // in_ch)
    if scale < 1 or scale * scale * in_ch != packed_out:
        raise ValueError(f"SRVGG: last conv has {packed_out} channels, not "
                         f"{in_ch} x scale^2")
    prelu = state.get("body.1.weight")
    # PReLU is the only activation with weights; without them the usual other choice is
    # LeakyReLU(0.1) (ReLU checkpoints cannot be told apart by their tensors).
    act = "prelu" if prelu is not None and prelu.ndim == 1 else "leakyrelu"
    module = SRVGGNetCompact(in_ch, in_ch, num_feat, len(convs) - 2, scale, act)
    _strict_load(module, state, "srvgg")
    return SRModel(module, scale, "srvgg", in_ch, in_ch)


# -- loading ------------------------------------------------------------------------------


def unwrap_state(state: Mapping[str, Any]) -> StateDict:
    """Take the weights out of a training checkpoint wrapper and drop a DataParallel
    ``module.`` prefix."""
    for _ in range(2):  # e.g. {"model": {"params_ema": ...}} is rare but cheap to allow
        wrapper = next((k for k in _WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if wrapper is None:
            break
        state = state[wrapper]
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_sr_model(state: Mapping[str, Any]) -> SRModel:
    """Recognise the architecture of a state dict, build the matching module and load it.

    Raises ValueError naming the keys seen when the layout is not one of those supported.
    """
    tensors = unwrap_state(state)
    if "model.0.weight" in tensors and any(k.startswith("model.1.sub.") for k in tensors):
        return _load_rrdb(esrgan_old_to_new(tensors))
    if "conv_first.weight" in tensors and any(k.startswith("RRDB_trunk.") for k in tensors):
        return _load_rrdb(esrgan_mid_to_new(tensors))
    if "conv_first.weight" in tensors and "body.0.rdb1.conv1.weight" in tensors:
        return _load_rrdb(tensors)
    if "body.0.weight" in tensors and not any(".rdb" in k for k in tensors):
        return _load_srvgg(tensors)
    raise ValueError("unrecognised upscaler weights: expected ESRGAN/RRDBNet (model.0, "
                     "model.1.sub..., or conv_first, body.N.rdb1...) or Real-ESRGAN compact "
                     f"(body.0, body.1, ...); keys seen: {_sample_keys(tensors or state)}")


def load_sr_file(path: Path) -> SRModel:
    """Read ``.pth``/``.pt``/``.ckpt`` (torch, tensors only) or ``.safetensors`` weights."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state: Mapping[str, Any] = load_file(str(path), device="cpu")
    else:
        # weights_only: a .pth from the internet must not be able to run code on load.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path.name}: expected a state dict, got {type(state).__name__}")
    return load_sr_model(state)


def _strict_load(module: nn.Module, state: StateDict, arch: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # turn shape/key mismatches into the loader's error type
        raise ValueError(f"{arch}: weights do not fit the inferred network: {exc}") from exc


def _sample_keys(state: Mapping[str, Any], limit: int = 12) -> str:
    keys = [str(k) for k in state]
    shown = ", ".join(keys[:limit]) or "(none)"
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")
