"""A tiny SDXL pipeline (diffusers format): SDXL's shape at a few MB.

What makes it SDXL is kept: two text encoders (CLIP-L as ``CLIPTextModel``, CLIP-G as
``CLIPTextModelWithProjection``) whose penultimate layers are concatenated into the UNet's
cross-attention width; a UNet with ``addition_embed_type="text_time"`` reading G's
projected pooled vector and six size ids; an 8× VAE with SDXL's latent scaling 0.13025;
SDXL's Euler scheduler. L and G have different widths (and G's projection a third) so a
mixed-up concatenation or pooled vector shows as a shape error.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nodes.testpack.diffusion import _tokenizer_files

POSITIONS = 77  # CLIP's context length
L_WIDTH, G_WIDTH, G_PROJECTION = 32, 48, 40  # real SDXL: 768, 1280, 1280
TIME_EMBED = 8  # per size id; real SDXL: 256
SIZE_IDS = 6  # (h, w, crop_h, crop_w, target_h, target_w)
SDXL_SCALING = 0.13025


def build_tiny_sdxl(folder: Path, seed: int = 3) -> Path:
    """Save a tiny ``StableDiffusionXLPipeline`` to ``folder`` (same seed, same weights)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as words:
        _tokenizer_files(Path(words))
        tokenizer = CLIPTokenizer.from_pretrained(words, model_max_length=POSITIONS)
        # SDXL's second tokenizer pads with token 0 ("!" in the real vocabulary; the start
        # token here, the only id 0 this vocabulary has).
        tokenizer_2 = CLIPTokenizer.from_pretrained(words, model_max_length=POSITIONS,
                                                    pad_token="<|startoftext|>")
    common = dict(num_attention_heads=4, num_hidden_layers=3,
                  max_position_embeddings=POSITIONS, vocab_size=len(tokenizer),
                  bos_token_id=0, eos_token_id=1, pad_token_id=1)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=L_WIDTH, intermediate_size=37,
                                                **common))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=G_WIDTH, intermediate_size=53, projection_dim=G_PROJECTION,
        hidden_act="gelu", **common))  # OpenCLIP bigG uses gelu, not quick_gelu
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, sample_size=8,
        in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, cross_attention_dim=L_WIDTH + G_WIDTH,
        addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=SIZE_IDS * TIME_EMBED + G_PROJECTION)
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8,
        latent_channels=4, sample_size=64, scaling_factor=SDXL_SCALING,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading",
                                       interpolation_type="linear")
    pipeline = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
        force_zeros_for_empty_prompt=True, add_watermarker=False)
    pipeline.save_pretrained(str(folder))
    return folder
