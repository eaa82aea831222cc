"""A tiny Stable Diffusion pipeline (UNet, VAE, CLIP text encoder, offline tokenizer)."""

from __future__ import annotations

import json
import os
from pathlib import Path

VOCAB_WORDS = ["a", "red", "fox", "cat", "dog", "blue", "sky", "tree", "house", "photo",
               "of", "the", "in", "on", "green", "field", "portrait", "night", "city", "sea"]


def _tokenizer_files(folder: Path) -> None:
    """A CLIP BPE vocabulary written as files (transformers 5 ignores vocab_file= args)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(f"{char}</w>", len(vocab))
    for word in VOCAB_WORDS:
        vocab.setdefault(f"{word}</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    merges = ["#version: 0.2"]
    for word in VOCAB_WORDS:
        # Merge letters left to right until the word is one token.
        current = list(word[:-1]) + [word[-1] + "</w>"]
        while len(current) > 1:
            merges.append(f"{current[0]} {current[1]}")
            merged = current[0] + current[1]
            vocab.setdefault(merged, len(vocab))
            current = [merged] + current[2:]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(dict.fromkeys(merges)) + "\n")


def build_tiny_sd(folder: Path, seed: int = 0, inpaint: bool = False) -> Path:
    """Save a tiny SD 1.5-shaped pipeline to ``folder`` with ``save_pretrained``.

    ``inpaint``: the inpainting variant, whose UNet also reads the mask and the masked
    image's latents (9 input channels), saved as a StableDiffusionInpaintPipeline.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    tokenizer_dir = folder / "_tokenizer_src"
    _tokenizer_files(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, vocab_size=len(tokenizer), bos_token_id=0,
        eos_token_id=1, pad_token_id=1))
    # Shaped like SD 1.5 where it matters for speed at real sizes: the VAE scales by 8
    # (four levels) and attention only runs at the UNet's lowest level (1/4 of the latent
    # side), so 512x512 at 25 steps takes about a second on two cores and 1024x1024 a
    # few. Attention in the VAE's middle block (over every latent pixel) is left out.
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32, 64), layers_per_block=1, sample_size=64,
        norm_num_groups=8, in_channels=9 if inpaint else 4, out_channels=4,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(8, 16, 32, 32), latent_channels=4,
                        layers_per_block=1, norm_num_groups=8, sample_size=512,
                        mid_block_add_attention=False,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1)
    pipeline_class = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipeline = pipeline_class(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                       unet=unet, scheduler=scheduler, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipeline.save_pretrained(str(folder))
    import shutil
    shutil.rmtree(tokenizer_dir)
    return folder
