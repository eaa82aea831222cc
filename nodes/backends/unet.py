"""A lone diffusion model (UNet) file, hosted on its own: ComfyUI's UNETLoader.

Files in ``models/diffusion_models`` (or ``models/unet``) hold just the UNet, in the
original LDM layout (with or without the ``model.diffusion_model.`` prefix) or in
diffusers' layout. Their architecture (sd1, sd2, sdxl) is read off the weights; the shape
details come from the local config folder of that architecture,
``models/configs/<arch>/unet/config.json`` (and its ``scheduler/`` for the noise levels),
as for single-file checkpoints: nothing can be fetched from the Hub here. LDM names are
mapped with the exact inverse of diffusers' conversion (``nodes.backends.layout``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from nodes.backends.checkpoint import (
    UNET_PREFIX,
    CheckpointError,
    read_state_dict,
    tensor_shapes,
)
from nodes.backends.device import placement
from nodes.backends.layout import ldm_names
from nodes.backends.parts import PartCalls, Parts
from nodes.backends.quiet import quiet_loading

# ComfyUI's weight_dtype choices -> the storage dtype's name in torch (None: as loaded)
WEIGHT_DTYPES = {"default": None, "fp8_e4m3fn": "float8_e4m3fn",
                 "fp8_e4m3fn_fast": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}
# The raw-latent scale of each architecture, for a config folder without vae/
_LATENT_SCALE = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025}


def unet_arch(path: Path) -> str:
    """sd1, sd2 or sdxl from a lone UNet file's weight names and shapes (either layout):
    SDXL embeds its size conditions (label_emb / add_embedding); SD 2's cross-attention
    reads 1024-wide OpenCLIP features where SD 1's reads CLIP-L's."""
    shapes = {k.removeprefix(UNET_PREFIX): v for k, v in tensor_shapes(Path(path)).items()}
    if not any(k.startswith(("input_blocks.", "down_blocks.")) for k in shapes):
        raise CheckpointError(f"{Path(path).name}: no UNet weights (input_blocks.* or "
                              "down_blocks.*): not a diffusion model file")
    if any(k.startswith(("label_emb.", "add_embedding.")) for k in shapes):
        return "sdxl"
    widths = {shape[1] for k, shape in shapes.items()
              if k.endswith("attn2.to_k.weight") and len(shape) == 2}
    if not widths:
        raise CheckpointError(f"{Path(path).name}: no cross-attention weights (attn2.to_k): "
                              "not a Stable Diffusion UNet")
    return "sd2" if 1024 in widths else "sd1"


def unet_weights(path: Path) -> dict[str, Any]:
    """A UNet file's tensors, the LDM prefix (if any) taken off."""
    state = read_state_dict(Path(path))
    if any(k.startswith(UNET_PREFIX) for k in state):
        state = {k[len(UNET_PREFIX):]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    if not any(k.startswith(("input_blocks.", "down_blocks.")) for k in state):
        raise CheckpointError(f"{Path(path).name}: no UNet weights (input_blocks.* or "
                              "down_blocks.*): not a diffusion model file")
    return state


def load_unet(path: Path, config_dir: Path) -> Any:
    """The UNet2DConditionModel of one file, shaped by ``config_dir/unet/config.json``."""
    from diffusers import UNet2DConditionModel

    state = unet_weights(path)
    config_file = config_dir / "unet" / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{Path(path).name}: needs the diffusers-format UNet config of "
                              f"its architecture at {config_file}")
    with quiet_loading():
        unet = UNet2DConditionModel.from_config(json.loads(config_file.read_text()))
    wanted = unet.state_dict()
    if any(k.startswith("input_blocks.") for k in state):  # LDM layout: rename
        names = ldm_names(wanted, unet.config)
        state = {key: state[ldm] for key, ldm in names.items() if ldm in state}
    missing = [key for key in wanted if key not in state]
    if missing:
        raise CheckpointError(f"{Path(path).name}: {len(missing)} UNet weights missing for "
                              f"the {config_file.parent.parent.name} config (e.g. "
                              f"{missing[0]}): another architecture or a damaged file")
    for key, tensor in wanted.items():
        if state[key].shape != tensor.shape:
            if state[key].numel() != tensor.numel():  # 1x1 conv vs linear: same numbers
                raise CheckpointError(f"{Path(path).name}: {key} is {tuple(state[key].shape)}"
                                      f", the config wants {tuple(tensor.shape)}")
            state[key] = state[key].reshape(tensor.shape)
    unet.load_state_dict({key: state[key] for key in wanted})
    return unet.eval()


class UnetBackend(PartCalls):
    """A lone UNet's host: KSampler calls ``ksample`` on it (with any LoRAs)."""

    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        from diffusers import EulerDiscreteScheduler

        device, dtype = placement(device)
        self.arch = str(manifest.options.get("arch") or "sd1")
        config_dir = Path(manifest.options["config"])
        with quiet_loading():  # diffusers warns about to(dtype) on any model
            unet = load_unet(weights, config_dir).to(device, dtype)
        storage = WEIGHT_DTYPES[str(manifest.options.get("weight_dtype") or "default")]
        if storage is not None:
            import torch
            # ComfyUI's fp8 weight_dtype: weights stored in fp8, each layer cast up to the
            # compute dtype as it runs (half the memory, a little precision lost).
            unet.enable_layerwise_casting(storage_dtype=getattr(torch, storage),
                                          compute_dtype=dtype)
        scheduler_file = config_dir / "scheduler" / "scheduler_config.json"
        scheduler = EulerDiscreteScheduler.from_config(
            json.loads(scheduler_file.read_text()) if scheduler_file.is_file() else {})
        self.base = Parts(unet=unet, scheduler=scheduler)
        self.device = device
        self._vae_config = config_dir / "vae" / "config.json"
        self.memory_bytes = sum(p.numel() * p.element_size() for p in unet.parameters())

    def latent_format(self) -> tuple[float, float]:
        """The architecture's VAE scaling: its config folder's, else the known value."""
        if self._vae_config.is_file():
            config = json.loads(self._vae_config.read_text())
            return (float(config.get("scaling_factor") or _LATENT_SCALE[self.arch]),
                    float(config.get("shift_factor") or 0.0))
        return _LATENT_SCALE[self.arch], 0.0
