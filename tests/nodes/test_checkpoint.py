"""Single-file checkpoints in the original CompVis/LDM layout (as Civitai ships SD 1.5): the
test pack's tiny SD 1.x written as one .safetensors file, loaded back through diffusers'
``from_single_file`` with a local config folder, offline, to the same weights and pixels."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.models.manifest import ModelManifest
from engine.models.store import ModelStore
from nodes.backends.checkpoint import CheckpointError, load_single_file
from nodes.testpack.checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FOLDER,
    load_checkpoint,
    save_checkpoint,
    tiny_sd1_pipeline,
)
from nodes.testpack.install import _PACK, TINY_CHECKPOINT, TINY_SD

COMPONENTS = ("unet", "vae", "text_encoder")
SEED = 2


@dataclass
class Opaque:
    """Pickled beside the weights, as old training checkpoints pickle their callbacks."""

    value: int = 1


@pytest.fixture(scope="module")
def original() -> Any:
    """The diffusers-format pipeline the checkpoint is written from."""
    return tiny_sd1_pipeline(SEED)


@pytest.fixture(scope="module")
def checkpoint(original: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(original, tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network, and no guessing the model type from key names: with ``config=`` given,
    every component must be built from the local config folder."""
    import huggingface_hub.constants
    from diffusers.loaders import single_file_utils

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    def no_guessing(checkpoint: Any) -> str:
        raise AssertionError("from_single_file inferred the model type despite config=")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(single_file_utils, "infer_diffusers_model_type", no_guessing)


def assert_same_weights(loaded: Any, original: Any) -> None:
    for name in COMPONENTS:
        want, got = getattr(original, name).state_dict(), getattr(loaded, name).state_dict()
        assert set(got) == set(want), name
        differ = [key for key in want if not torch.equal(got[key], want[key])]
        assert not differ, f"{name}: {len(differ)} tensors differ, e.g. {differ[:3]}"


def draw(pipeline: Any, size: int) -> np.ndarray:
    return pipeline(prompt="a red fox in a green field", negative_prompt="",
                    num_inference_steps=2, guidance_scale=7.0, height=size, width=size,
                    generator=torch.Generator("cpu").manual_seed(SEED),
                    output_type="np").images


def test_the_file_is_one_safetensors_in_the_original_ldm_layout(checkpoint: Path) -> None:
    assert checkpoint.name == CHECKPOINT_FILE and checkpoint.stat().st_size < 8 * 1024**2
    with safe_open(str(checkpoint), framework="pt") as opened:
        names = set(opened.keys())
        q_shape = opened.get_slice("first_stage_model.encoder.mid.attn_1.q.weight").get_shape()
    for name in ("model.diffusion_model.input_blocks.0.0.weight",
                 "model.diffusion_model.middle_block.1.proj_in.weight",
                 "model.diffusion_model.output_blocks.2.1.conv.weight",  # upsampler, no attn
                 "model.diffusion_model.output_blocks.5.2.conv.weight",  # after attention
                 "model.diffusion_model.time_embed.0.weight",
                 "first_stage_model.encoder.conv_in.weight",
                 "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight",
                 "first_stage_model.decoder.up.3.upsample.conv.weight",
                 "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                 "cond_stage_model.transformer.text_model.embeddings.position_ids",
                 "alphas_cumprod"):
        assert name in names, name
    assert len(q_shape) == 4  # LDM's VAE attention is 1x1 convolutions
    assert not [n for n in names if re.search(r"(down|up)_blocks|mid_block", n)]  # diffusers'
    assert (checkpoint.parent / CONFIG_FOLDER / "model_index.json").is_file()
    assert not list((checkpoint.parent / CONFIG_FOLDER).rglob("*.safetensors"))


def test_diffusers_own_conversion_is_the_exact_inverse_of_ours(checkpoint: Path,
                                                                original: Any) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    state = load_file(str(checkpoint))
    back = {"unet": convert_ldm_unet_checkpoint(state, original.unet.config),
            "vae": convert_ldm_vae_checkpoint(state, original.vae.config),
            "text_encoder": {k.removeprefix("text_model."): v
                             for k, v in convert_ldm_clip_checkpoint(state).items()}}
    for name in COMPONENTS:
        want = getattr(original, name).state_dict()
        got = {k: v for k, v in back[name].items() if not k.endswith("position_ids")}
        assert set(got) == set(want), name
        assert all(torch.equal(got[key], want[key]) for key in want), name


def test_from_single_file_loads_every_weight_offline_from_the_config_folder(
        checkpoint: Path, original: Any, offline: None) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    loaded = load_checkpoint(checkpoint, checkpoint.parent / CONFIG_FOLDER)
    assert type(loaded).__name__ == "StableDiffusionPipeline"
    assert_same_weights(loaded, original)
    assert loaded.vae.config.scaling_factor == 0.18215 and loaded.vae_scale_factor == 8
    assert loaded.unet.config.in_channels == 4


@pytest.mark.parametrize("size", [64, 128])  # 8x8 and 16x16 latents
def test_the_loaded_checkpoint_draws_the_same_pixels(checkpoint: Path, original: Any,
                                                     offline: None, size: int) -> None:
    loaded = load_checkpoint(checkpoint, checkpoint.parent / CONFIG_FOLDER)
    loaded.set_progress_bar_config(disable=True)
    original.set_progress_bar_config(disable=True)
    want, got = draw(original, size), draw(loaded, size)
    assert got.shape == (1, size, size, 3)
    assert np.array_equal(got, want)


def test_a_ckpt_with_its_state_dict_wrapper_loads_the_same_weights(
        checkpoint: Path, original: Any, tmp_path: Path, offline: None) -> None:
    ckpt = tmp_path / "tiny-sd1.ckpt"
    torch.save({"state_dict": load_file(str(checkpoint)), "global_step": 470000, "epoch": 3},
               ckpt)
    loaded = load_single_file(ckpt, checkpoint.parent / CONFIG_FOLDER)
    assert_same_weights(loaded, original)


def test_a_ckpt_holding_pickled_objects_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": load_file(str(checkpoint)), "callbacks": Opaque()}, ckpt)
    with pytest.raises(CheckpointError, match=r"weights_only=True\) refused"):
        load_single_file(ckpt, checkpoint.parent / CONFIG_FOLDER)


def test_a_missing_config_folder_is_a_clear_error(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="needs a local diffusers-format config folder"):
        load_single_file(checkpoint, None)
    missing = tmp_path / "no-such-config"
    with pytest.raises(CheckpointError, match=str(missing)):
        load_single_file(checkpoint, missing)


def test_a_file_not_in_the_ldm_layout_is_refused(original: Any, checkpoint: Path,
                                                 tmp_path: Path) -> None:
    lone_unet = tmp_path / "unet.safetensors"
    save_file({k: v.contiguous() for k, v in original.unet.state_dict().items()},
              str(lone_unet))
    with pytest.raises(CheckpointError, match="not an original"):
        load_single_file(lone_unet, checkpoint.parent / CONFIG_FOLDER)


def test_the_backend_loads_the_registered_checkpoint(original: Any, tmp_path: Path,
                                                     offline: None) -> None:
    from nodes.backends.diffusers_sd import DiffusersBackend

    store = ModelStore(tmp_path / "models")
    build, fields = _PACK[TINY_CHECKPOINT]
    build(store.folder(TINY_CHECKPOINT) / "weights")
    store.register(ModelManifest(id=TINY_CHECKPOINT, source="test-pack", test=True, **fields))
    manifest = store.get(TINY_CHECKPOINT)
    assert manifest.format == "checkpoint" and store.weights(manifest).is_file()
    assert TINY_SD < TINY_CHECKPOINT  # the default diffusion test model stays TINY_SD
    backend = DiffusersBackend(manifest, store.weights(manifest), "cpu")
    assert_same_weights(backend.base, original)  # the pack builds with the same seed
    call = {"prompt": "a cat", "negative_prompt": "", "width": 64, "height": 64, "steps": 2,
            "cfg": 7.0, "seed": 5, "batch_size": 1, "sampler": "default",
            "scheduler": "normal", "preview": False}
    (result,) = backend.text_to_image([call], lambda index, update: True)
    assert result["seeds"] == [5] and result["images"][0].size == (64, 64)
