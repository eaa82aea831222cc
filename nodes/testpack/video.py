"""A tiny Stable Video Diffusion pipeline (image to video) with random weights, for tests.

Same parts as the real SVD checkpoints (a spatio-temporal UNet, a VAE with a temporal
decoder, a CLIP vision encoder and its image processor, SVD's Euler scheduler), at a few
MB. The VAE has SVD's four levels (scale factor 8), with 32 channels each (its group
norms take 32 groups), because ComfyUI's SVD_img2vid_Conditioning makes latents of
H/8 × W/8: a 64×64 clip denoises 8×8 latents.
The CLIP encoder keeps SVD's 224×224 input (the pipeline always resizes to that), with
32-pixel patches so it stays small.

transformers 5's default ``CLIPImageProcessor`` is the torchvision-backed one, and no CPU
build of torchvision exists here; the Pillow-backed ``CLIPImageProcessorPil`` does the
same (the pipeline only asks it to normalise). Real SVD folders naming
``CLIPImageProcessor`` load too: transformers falls back to the Pillow one by itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# SVD's own scheduler settings (its scheduler_config.json): v-prediction with continuous
# timesteps over Karras sigmas between 0.002 and 700.
SVD_SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "interpolation_type": "linear", "num_train_timesteps": 1000,
    "prediction_type": "v_prediction", "sigma_max": 700.0, "sigma_min": 0.002,
    "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous",
    "use_karras_sigmas": True,
}
TIME_EMBED = 8  # per added time id; SVD adds three (fps, motion bucket, noise strength)


def _image_processor() -> Any:
    import transformers

    # The Pillow-backed class when this transformers has it (5.x); the plain one before.
    processor = getattr(transformers, "CLIPImageProcessorPil", None) \
        or transformers.CLIPImageProcessor
    return processor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})


def build_tiny_svd(folder: Path, seed: int = 0) -> Path:
    """Save a tiny SVD-shaped image-to-video pipeline to ``folder`` (``save_pretrained``);
    ``StableVideoDiffusionPipeline.from_pretrained(folder)`` reloads it offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8, in_channels=8, out_channels=4,  # noise latents + image latents
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
        num_attention_heads=(2, 4), addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=3 * TIME_EMBED, num_frames=14)
    vae = AutoencoderKLTemporalDecoder(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32,) * 4)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, image_size=224, patch_size=32))
    pipeline = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet,
        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
        feature_extractor=_image_processor())
    pipeline.save_pretrained(str(folder))
    return folder
