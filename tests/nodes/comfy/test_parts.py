"""UNETLoader, CLIPLoader and DualCLIPLoader: a checkpoint's parts as separate files in
ComfyUI's folders compose what CheckpointLoaderSimple gives, pixel for pixel."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from engine.errors import GraphValidationError
from engine.loader import graph_from_comfy
from engine.models.store import ModelStore
from engine.settings import get_settings
from nodes.backends.checkpoint import UNET_PREFIX
from nodes.comfy.clip import TEXT_ENCODERS
from nodes.comfy.loader import DIFFUSION_MODELS
from nodes.testpack.install import TINY_CHECKPOINT, TINY_SDXL
from tests.nodes.comfy.prompts import txt2img
from tests.nodes.comfy.test_workflows import saved

CLIP_PREFIX = "cond_stage_model.transformer."


def _models() -> Path:
    return get_settings().models_dir


def _split(checkpoint: Path, into: Path) -> dict[str, str]:
    """The single-file checkpoint cut into the files ComfyUI users keep apart: the UNet
    (LDM names, prefix dropped) and CLIP-L (transformers' names)."""
    state = load_file(str(checkpoint))
    parts = {
        "diffusion_models/sd1/tiny-unet.safetensors": {
            k[len(UNET_PREFIX):]: v for k, v in state.items() if k.startswith(UNET_PREFIX)},
        "text_encoders/tiny-clip-l.safetensors": {
            k[len(CLIP_PREFIX):]: v for k, v in state.items() if k.startswith(CLIP_PREFIX)},
}
    for name, tensors in parts.items():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(into / name))
    return {"unet": "sd1/tiny-unet.safetensors", "clip": "tiny-clip-l.safetensors"}


def _sdxl_parts(folder: Path, into: Path) -> dict[str, str]:
    """test-sdxl-tiny's parts as loose files: its UNet in diffusers' layout (in the older
    ``unet`` folder), its two CLIPs as published (G first, to check the order is found)."""
    (into / "unet").mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "unet" / "diffusion_pytorch_model.safetensors",
                into / "unet" / "tiny-sdxl-unet.safetensors")
    (into / "clip").mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "text_encoder" / "model.safetensors", into / "clip" / "tiny-l.safetensors")
    shutil.copy(folder / "text_encoder_2" / "model.safetensors",
                into / "clip" / "tiny-g.safetensors")
    return {"unet": "tiny-sdxl-unet.safetensors", "clip_g": "tiny-g.safetensors",
            "clip_l": "tiny-l.safetensors"}


def _configs(folder: Path, arch: str) -> None:
    """An architecture's config folder: the pipeline folder's configs, weights left out."""
    target = _models() / "configs" / arch
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))


@pytest.fixture(scope="module")
def parts(model_store: ModelStore, test_pack: list[str]) -> Iterator[dict[str, str]]:
    models = _models()
    checkpoint = model_store.weights(model_store.get(TINY_CHECKPOINT))
    names = _split(checkpoint, models)
    _configs(checkpoint.parent / "config", "sd1")
    sdxl = model_store.weights(model_store.get(TINY_SDXL))
    names.update({f"xl_{k}": v for k, v in _sdxl_parts(sdxl, models).items()})
    _configs(sdxl, "sdxl")
    yield names
    for folder in ("diffusion_models", "unet", "text_encoders", "clip", "configs"):
        shutil.rmtree(models / folder, ignore_errors=True)
    for manifest in model_store.list():
        if manifest.source.startswith("folder:"):
            model_store.remove(manifest.id)


def _txt2img(model: list[Any], clip: list[Any], vae: list[Any],
             loaders: dict[str, Any]) -> dict[str, Any]:
    return txt2img(loaders.get("4", {}).get("inputs", {}).get("ckpt_name", TINY_CHECKPOINT),
                   model=model, clip=clip, vae=vae, seed=3, cfg=5.0, prefix="parts",
                   **loaders)


def _draw(executor, prompt: dict[str, Any]) -> np.ndarray:
    result = executor.run(graph_from_comfy(prompt), {}, timeout=300)
    assert result.status == "success", result.error
    (picture,) = saved(result, "9")
    return picture


def _checkpoint_loader(name: str) -> dict[str, Any]:
    return {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}}}


def test_the_folders_list_their_files_and_aliases(parts):
    assert DIFFUSION_MODELS.files() == ["sd1/tiny-unet.safetensors",
                                        "tiny-sdxl-unet.safetensors"]
    assert TEXT_ENCODERS.files() == ["tiny-clip-l.safetensors", "tiny-g.safetensors",
                                     "tiny-l.safetensors"]
    assert DIFFUSION_MODELS.file("../text_encoders/tiny-clip-l.safetensors") is None


def test_unet_clip_and_vae_files_draw_what_their_checkpoint_draws(executor, parts):
    whole = _draw(executor, _txt2img(["4", 0], ["4", 1], ["4", 2],
                                     _checkpoint_loader(TINY_CHECKPOINT)))
    # (the tiny VAE's 8 norm groups are not the 32 of released VAEs, which VAELoader
    # builds; its own tests cover it on a VAE of that shape)
    loose = _draw(executor, _txt2img(["10", 0], ["11", 0], ["4", 2], {
        **_checkpoint_loader(TINY_CHECKPOINT),
        "10": {"class_type": "UNETLoader", "inputs": {"unet_name": parts["unet"],
                                                      "weight_dtype": "default"}},
        "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": parts["clip"],
                                                      "type": "stable_diffusion"}}}))
    assert whole.std() > 1
    # The same weights through other loading code: equal within rounding
    assert np.abs(whole - loose).max() <= 2


def test_sdxl_parts_in_the_older_folders_and_either_order_draw_the_checkpoint(executor,
                                                                             parts):
    whole = _draw(executor, _txt2img(["4", 0], ["4", 1], ["4", 2],
                                     _checkpoint_loader(TINY_SDXL)))
    loose = _draw(executor, _txt2img(["10", 0], ["11", 0], ["4", 2], {
        **_checkpoint_loader(TINY_SDXL),
        "10": {"class_type": "UNETLoader", "inputs": {"unet_name": parts["xl_unet"],
                                                      "weight_dtype": "default"}},
        "11": {"class_type": "DualCLIPLoader", "inputs": {
            "clip_name1": parts["xl_clip_g"], "clip_name2": parts["xl_clip_l"],
            "type": "sdxl"}}}))
    assert np.abs(whole - loose).max() <= 2


def test_fp8_weights_draw_close_to_full_precision_on_their_own_host(executor, parts,
                                                                    model_store):
    def unet(dtype: str) -> dict[str, Any]:
        return {"10": {"class_type": "UNETLoader", "inputs": {"unet_name": parts["unet"],
                                                              "weight_dtype": dtype}},
                "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": parts["clip"]}},
                **_checkpoint_loader(TINY_CHECKPOINT)}

    full = _draw(executor, _txt2img(["10", 0], ["11", 0], ["4", 2], unet("default")))
    fp8 = _draw(executor, _txt2img(["10", 0], ["11", 0], ["4", 2], unet("fp8_e4m3fn")))
    hosted = {m.id for m in model_store.list() if m.kind == "unet"}
    assert any(i.endswith("fp8_e4m3fn") for i in hosted) and len(hosted) >= 2
    difference = np.abs(full - fp8)
    # 8-bit weights round: the picture moves a little, and only a little
    assert 0 < difference.mean() < 40


def test_a_clip_of_no_configured_width_and_missing_files_are_clear_errors(executor, parts):
    graph = graph_from_comfy(_txt2img(["4", 0], ["11", 0], ["4", 2], {
        **_checkpoint_loader(TINY_CHECKPOINT),
        "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": parts["xl_clip_g"]}}}))
    result = executor.run(graph, {}, timeout=120)
    assert result.status == "failed"
    assert "wide CLIP" in result.error.message and "configs/sd1" in result.error.message
    missing = graph_from_comfy({
        "10": {"class_type": "UNETLoader", "inputs": {"unet_name": "nope.safetensors"}},
        "11": {"class_type": "DualCLIPLoader", "inputs": {
            "clip_name1": parts["xl_clip_l"], "clip_name2": "gone.safetensors",
            "type": "sdxl"}},
        # Flux's CLIP-L + T5: no such model here, refused with what there is
        "12": {"class_type": "DualCLIPLoader", "inputs": {
            "clip_name1": parts["xl_clip_l"], "clip_name2": parts["xl_clip_g"],
            "type": "flux"}}})
    with pytest.raises(GraphValidationError) as refused:
        executor.prepare(missing)
    found = {(i.node_id, i.input): i.message for i in refused.value.issues}
    assert set(found) == {("10", "unet_name"), ("11", "clip_name2"), ("12", "type")}
    assert "'nope.safetensors' not in" in found[("10", "unet_name")]
    assert "tiny-sdxl-unet.safetensors" in found[("10", "unet_name")]
    assert "'gone.safetensors' not in" in found[("11", "clip_name2")]
    assert "sdxl" in found[("12", "type")]
