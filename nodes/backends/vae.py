"""A lone Stable Diffusion VAE file (``models/vae/*.safetensors``, as ComfyUI's VAELoader
reads them) hosted on its own, and the VAE calls every diffusion host shares.

SD 1.x/2.x and SDXL VAEs share one architecture; only their numbers differ (channels per
level, blocks per level, latent channels), and those can be read off the weights' shapes.
So a VAE file needs no config (none can be fetched here). Group norms keep the 32 groups
every released SD VAE uses. The file may be in the original (LDM) layout or in diffusers'.
Latents are raw here (no scaling factor), as ComfyUI's VAE nodes pass them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from nodes.backends.checkpoint import read_state_dict
from nodes.backends.device import placement
from nodes.backends.quiet import quiet_loading

VAE_RATIO = 8  # ComfyUI crops pictures to multiples of 8 before encoding


def decode_latents(vae: Any, samples: Any, device: str) -> Any:
    """Raw latents (B×C×h×w, or frames×... as a 5-D batch) to an IMAGE in 0..1."""
    import torch

    with torch.no_grad():
        frames = samples.reshape(-1, *samples.shape[-3:]) if samples.ndim == 5 else samples
        pixels = vae.decode(frames.to(device, vae.dtype)).sample.float().cpu()
    return torch.clamp((pixels + 1.0) / 2.0, 0.0, 1.0).movedim(1, -1)


def encode_pixels(vae: Any, pixels: Any, device: str) -> Any:
    """An IMAGE to raw latents (the posterior's mean), after cropping each side to a
    multiple of 8 around the centre and dropping alpha, as ComfyUI's VAEEncode does."""
    import torch

    image = pixels[..., :3]
    height = image.shape[1] // VAE_RATIO * VAE_RATIO
    width = image.shape[2] // VAE_RATIO * VAE_RATIO
    if height == 0 or width == 0:
        raise ValueError(f"a {image.shape[2]}x{image.shape[1]} picture is smaller than the "
                         f"VAE's {VAE_RATIO} px grid")
    top, left = (image.shape[1] % VAE_RATIO) // 2, (image.shape[2] % VAE_RATIO) // 2
    image = image[:, top:top + height, left:left + width, :]
    with torch.no_grad():
        posterior = vae.encode((image.movedim(-1, 1) * 2.0 - 1.0).to(device, vae.dtype))
    return posterior.latent_dist.mode().float().cpu()


def vae_config(state: dict[str, Any]) -> dict[str, Any]:
    """AutoencoderKL's config read off an LDM-layout VAE state dict's shapes."""
    levels = 0
    while f"encoder.down.{levels}.block.0.conv1.weight" in state:
        levels += 1
    if not levels:
        raise ValueError("no 'encoder.down.0.block.0.conv1.weight': not a Stable Diffusion "
                         "VAE")
    per_block = 0
    while f"encoder.down.0.block.{per_block}.conv1.weight" in state:
        per_block += 1
    return {
        "in_channels": int(state["encoder.conv_in.weight"].shape[1]),
        "out_channels": int(state["decoder.conv_out.weight"].shape[0]),
        "latent_channels": int(state["encoder.conv_out.weight"].shape[0]) // 2,
        "block_out_channels": [int(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0])
                               for i in range(levels)],
        "layers_per_block": per_block,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "norm_num_groups": 32,
    }


def load_vae(path: Path) -> Any:
    """An AutoencoderKL from one VAE file, in LDM or diffusers layout."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    state = read_state_dict(path) if path.suffix.lower() != ".safetensors" else _safetensors(path)
    state = {k.removeprefix("first_stage_model."): v for k, v in state.items()}
    if "encoder.conv_in.weight" not in state:
        raise ValueError(f"{path.name}: no 'encoder.conv_in.weight', so not a VAE")
    if "encoder.down_blocks.0.resnets.0.conv1.weight" in state:  # diffusers' layout
        raise ValueError(f"{path.name}: a VAE in diffusers' layout; save it with its "
                         "config.json in a folder and install it, or use the LDM file")
    config = vae_config(state)
    with quiet_loading():
        vae = AutoencoderKL(**config)
        missing, unexpected = vae.load_state_dict(convert_ldm_vae_checkpoint(state, config),
                                                  strict=False)
    if missing:
        raise ValueError(f"{path.name}: {len(missing)} VAE weights missing "
                         f"(e.g. {missing[0]}): not a Stable Diffusion VAE of this layout")
    return vae.eval()


def _safetensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


class VaeBackend:
    """A VAE file's host: VAEDecode and VAEEncode call ``vae_decode``/``vae_encode``."""

    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        device, dtype = placement(device)
        self.vae = load_vae(weights).to(device, dtype)
        self.device = device
        self.memory_bytes = sum(p.numel() * p.element_size() for p in self.vae.parameters())

    def vae_decode(self, samples: Any) -> Any:
        return decode_latents(self.vae, samples, self.device)

    def vae_encode(self, pixels: Any) -> Any:
        return encode_pixels(self.vae, pixels, self.device)
