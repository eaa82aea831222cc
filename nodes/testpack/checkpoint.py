"""A tiny Stable Diffusion 1.x checkpoint as Civitai ships them: one ``.safetensors`` file in
the original CompVis/LDM key layout (``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.transformer.*``), beside the diffusers-format config folder that
``from_single_file`` needs to know the (tiny) architecture.

The weights start as a diffusers pipeline and are renamed here with the exact inverse of
diffusers' own single-file conversion (``diffusers.loaders.single_file_utils``:
``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``,
``convert_ldm_clip_checkpoint``), so loading the file back gives the same tensors bit for bit.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.backends.layout import ldm_names
from nodes.testpack.diffusion import _tokenizer_files

if TYPE_CHECKING:
    import torch

CHECKPOINT_FILE = "tiny-sd1.safetensors"
CONFIG_FOLDER = "config"
POSITIONS = 77  # CLIP's context length, as in SD 1.x

UNET, VAE, CLIP = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
                  "to_out.0": "proj_out"}


def tiny_sd1_pipeline(seed: int = 2) -> Any:
    """An SD 1.x-shaped StableDiffusionPipeline with random weights (same seed, same weights).

    The shapes follow SD 1.5 where the conversion depends on them, at a few MB: a 4-level
    VAE (scale factor 8, SD 1's latent scaling 0.18215), a 3-level UNet with 2 layers per
    block (so input/output blocks are numbered as in SD 1), cross-attention in all but the
    deepest level, and channel changes so resnets carry the shortcut convolutions SD 1's
    have (``skip_connection``, ``nin_shortcut``). 64x64 images are 8x8 latents.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as words:
        _tokenizer_files(Path(words))
        tokenizer = CLIPTokenizer.from_pretrained(words, model_max_length=POSITIONS)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=POSITIONS, vocab_size=len(tokenizer), bos_token_id=0,
        eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32, 32), layers_per_block=2, norm_num_groups=8,
        sample_size=8, in_channels=4, out_channels=4, cross_attention_dim=32,
        attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8,
        latent_channels=4, sample_size=64, scaling_factor=0.18215,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    # Shift every parameter off its initial value (norms start at exactly 1, biases at 0):
    # a weight the loader failed to map would otherwise equal the original by chance.
    with torch.no_grad():
        for model in (text_encoder, unet, vae):
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.02)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)


# -- diffusers names -> LDM names ------------------------------------------------------------


def unet_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """The UNet's state dict under ``model.diffusion_model.`` in LDM's flat numbering."""
    names = ldm_names(state, config)
    return {UNET + names[key]: value for key, value in state.items()}


def _vae_name(key: str, levels: int) -> tuple[str, bool]:
    """One VAE parameter's LDM name, and whether LDM holds it as a 1x1 conv (the mid
    attention's q/k/v/proj_out weights, linear layers in diffusers)."""
    if found := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(\w+)", key):
        return f"{found[1]}.norm_out.{found[2]}", False
    if re.fullmatch(r"(encoder|decoder)\.conv_(in|out)\.\w+|(post_)?quant_conv\.\w+", key):
        return key, False
    if found := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        rest = found[3].replace("conv_shortcut", "nin_shortcut")
        return f"encoder.down.{found[1]}.block.{found[2]}.{rest}", False
    if found := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
        return f"encoder.down.{found[1]}.downsample.conv.{found[2]}", False
    # LDM's decoder counts its levels from the deepest up; diffusers' from the top down.
    if found := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        rest = found[3].replace("conv_shortcut", "nin_shortcut")
        return f"decoder.up.{levels - 1 - int(found[1])}.block.{found[2]}.{rest}", False
    if found := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
        return f"decoder.up.{levels - 1 - int(found[1])}.upsample.conv.{found[2]}", False
    if found := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        rest = found[3].replace("conv_shortcut", "nin_shortcut")
        return f"{found[1]}.mid.block_{int(found[2]) + 1}.{rest}", False
    if found := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(\w+)", key):
        name = _VAE_ATTENTION[found[2]]
        return f"{found[1]}.mid.attn_1.{name}.{found[3]}", name != "norm" and found[3] == "weight"
    raise KeyError(f"no LDM name for the VAE parameter {key!r}")


def vae_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    levels = len(config["up_block_types"])
    converted = {}
    for key, value in state.items():
        name, conv = _vae_name(key, levels)
        converted[VAE + name] = value[:, :, None, None] if conv else value
    return converted


def clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The text encoder under ``cond_stage_model.transformer.text_model.``. transformers
    5.6+ dropped the ``text_model.`` level from CLIPTextModel's own names; SD 1 files have
    it, with the ``position_ids`` buffer that newer transformers no longer saves."""
    import torch

    converted = {CLIP + (key if key.startswith("text_model.") else f"text_model.{key}"): value
                 for key, value in state.items()}
    converted[f"{CLIP}text_model.embeddings.position_ids"] = torch.arange(POSITIONS)[None]
    return converted


def ddpm_buffers(steps: int = 1000, start: float = 0.00085,
                 end: float = 0.012) -> dict[str, torch.Tensor]:
    """The noise schedule LatentDiffusion registers as buffers (register_schedule, "linear"
    in LDM = diffusers' scaled_linear); SD 1 files carry them, and loaders must skip them."""
    import numpy as np
    import torch

    betas = np.linspace(start**0.5, end**0.5, steps, dtype=np.float64) ** 2
    alphas = np.cumprod(1.0 - betas)
    previous = np.append(1.0, alphas[:-1])
    variance = betas * (1.0 - previous) / (1.0 - alphas)
    schedule = {
        "betas": betas, "alphas_cumprod": alphas, "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": np.sqrt(alphas),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas),
        "log_one_minus_alphas_cumprod": np.log(1.0 - alphas),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas - 1),
        "posterior_variance": variance,
        "posterior_log_variance_clipped": np.log(np.maximum(variance, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(previous) / (1.0 - alphas),
        "posterior_mean_coef2": (1.0 - previous) * np.sqrt(1.0 - betas) / (1.0 - alphas)}
    return {name: torch.tensor(values, dtype=torch.float32) for name, values in schedule.items()}


def to_ldm(pipeline: Any) -> dict[str, torch.Tensor]:
    """The whole pipeline as one LDM-layout state dict, every tensor its own contiguous copy
    (safetensors refuses tensors that share memory)."""
    state = {**unet_to_ldm(pipeline.unet.state_dict(), pipeline.unet.config),
             **vae_to_ldm(pipeline.vae.state_dict(), pipeline.vae.config),
             **clip_to_ldm(pipeline.text_encoder.state_dict()), **ddpm_buffers()}
    return {key: value.detach().clone().contiguous() for key, value in state.items()}


# -- files -----------------------------------------------------------------------------------


def write_config_folder(pipeline: Any, folder: Path) -> Path:
    """The diffusers-format configs from_single_file builds the components from (no weights:
    those come from the checkpoint): model_index.json, each model's config.json, the
    scheduler's and the tokenizer's files."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    pipeline.save_config(str(folder))
    pipeline.unet.save_config(str(folder / "unet"))
    pipeline.vae.save_config(str(folder / "vae"))
    pipeline.text_encoder.config.save_pretrained(str(folder / "text_encoder"))
    pipeline.scheduler.save_pretrained(str(folder / "scheduler"))
    pipeline.tokenizer.save_pretrained(str(folder / "tokenizer"))
    return folder


def save_checkpoint(pipeline: Any, folder: Path) -> Path:
    """Write ``folder/tiny-sd1.safetensors`` (LDM layout) and ``folder/config/``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT_FILE
    save_file(to_ldm(pipeline), str(path), metadata={"format": "pt"})
    write_config_folder(pipeline, folder / CONFIG_FOLDER)
    return path


def build_tiny_checkpoint(folder: Path, seed: int = 2) -> Path:
    """Build the tiny SD 1.x pipeline and save it as a single-file checkpoint in ``folder``
    (with its config folder); returns the checkpoint's path."""
    return save_checkpoint(tiny_sd1_pipeline(seed), folder)


def load_checkpoint(path: Path, config: Path, dtype: torch.dtype | None = None) -> Any:
    """The pipeline back from the checkpoint, the way the diffusion backend loads one."""
    from nodes.backends.checkpoint import load_single_file

    return load_single_file(path, config, dtype)
