"""VAELoader: a lone SD VAE file from models/vae on its own host, and pixel_space."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.loader import graph_from_comfy
from engine.models.store import ModelStore
from nodes.backends.vae import load_vae, vae_config
from nodes.comfy.vae import VAE_FILES, vae_file, vae_names
from nodes.testpack.install import TINY_CHECKPOINT

NAME = "sd/tiny-vae.safetensors"


def tiny_vae(seed: int = 4):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=(32, 32, 32, 32), layers_per_block=1,
                        latent_channels=4, norm_num_groups=32,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4)
    with torch.no_grad():  # off their initial values, so an unmapped weight would show
        for parameter in vae.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    return vae.eval()


@pytest.fixture(scope="module")
def vae_path() -> Iterator[Path]:
    """A tiny VAE written in the original (LDM) layout into models/vae; what runs register
    for it is removed afterwards."""
    from safetensors.torch import save_file

    from nodes.testpack.checkpoint import vae_to_ldm

    vae = tiny_vae()
    path = VAE_FILES.path() / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    # A lone VAE file (vae-ft-mse-840000-ema-pruned, sdxl_vae...) has no model prefix.
    save_file({k.removeprefix("first_stage_model."): v.contiguous()
               for k, v in vae_to_ldm(vae.state_dict(), vae.config).items()}, str(path))
    yield path
    path.unlink()
    store = ModelStore(VAE_FILES.path().parent)
    for manifest in store.list("vae"):
        store.remove(manifest.id)


def test_the_architecture_is_read_off_the_weights(vae_path):
    original = tiny_vae()
    loaded = load_vae(vae_path)
    assert loaded.config.block_out_channels == (32, 32, 32, 32) or \
        list(loaded.config.block_out_channels) == [32, 32, 32, 32]
    for name, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert NAME in vae_names() and vae_names()[-1] == "pixel_space"
    assert vae_file("pixel_space") is None
    with pytest.raises(Exception, match="not in"):
        vae_file("missing.safetensors")
    with pytest.raises(ValueError, match="not a Stable Diffusion VAE"):
        vae_config({"encoder.conv_in.weight": torch.zeros(1)})


def test_a_loaded_vae_decodes_what_the_checkpoint_sampled(executor, test_pack, vae_path):
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CHECKPOINT}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": NAME}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 1, "steps": 2, "cfg": 4.0, "sampler_name": "euler",
            "scheduler": "karras", "positive": ["3", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["2", 0]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    graph = graph_from_comfy(prompt).model_copy(update={"outputs": {
        "latent": "${5.0}", "loaded": "${6.0}", "own": "${7.0}"}})
    result = executor.run(graph, {}, timeout=300)
    assert result.status == "success", result.error
    with torch.no_grad():
        direct = tiny_vae().decode(result.outputs["latent"]["samples"]).sample
    expected = ((direct + 1) / 2).clamp(0, 1).movedim(1, -1)
    # the host and this process may run torch with different thread counts: a tolerance
    assert torch.allclose(result.outputs["loaded"], expected, atol=1e-4)
    assert not torch.allclose(result.outputs["loaded"], result.outputs["own"], atol=1e-2)


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_pixel_space_is_the_identity(executor, input_dir):
    from PIL import Image

    picture = Image.fromarray(np.arange(24 * 16 * 3, dtype=np.uint8).reshape(16, 24, 3))
    picture.save(input_dir / "p.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": f"{input_dir.name}/p.png"}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["2", 0]}},
        "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["2", 0]}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    graph = graph_from_comfy(prompt).model_copy(update={"outputs": {
        "latent": "${3.0}", "image": "${4.0}", "source": "${1.0}"}})
    result = executor.run(graph, {}, timeout=120)
    assert result.status == "success", result.error
    assert tuple(result.outputs["latent"]["samples"].shape) == (1, 3, 16, 24)
    assert torch.equal(result.outputs["image"], result.outputs["source"])
