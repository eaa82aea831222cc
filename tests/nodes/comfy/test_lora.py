"""LoraLoader: LoRA files merged into the resident pipeline's weights on its host, by the
published formulas, per graph, and taken out again for graphs without them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from engine.errors import GraphValidationError
from engine.loader import graph_from_comfy
from engine.models.store import ModelStore
from engine.settings import get_settings
from nodes.backends.lora import LoraError, Patcher, read_pairs
from nodes.comfy.lora import LORAS
from nodes.testpack.checkpoint import load_checkpoint
from nodes.testpack.install import TINY_CHECKPOINT, TINY_SDXL
from nodes.testpack.lora import ALPHA, LAYOUTS, RANK, lora_pairs, write_lora
from server.app import create_app
from tests.nodes.comfy.prompts import txt2img
from tests.nodes.comfy.test_workflows import saved


@pytest.fixture(scope="module")
def pipeline(model_store: ModelStore, test_pack: list[str]) -> Any:
    weights = model_store.weights(model_store.get(TINY_CHECKPOINT))
    return load_checkpoint(weights, weights.parent / "config")


@pytest.fixture(scope="module")
def loras(pipeline: Any) -> Iterator[dict[str, str]]:
    """The tiny checkpoint's LoRAs in models/loras: one per layout (the same pairs),
    another seed, and an SDXL one (another family)."""
    folder = LORAS.path()
    names = {layout: f"tiny-{layout}.safetensors" for layout in LAYOUTS}
    for layout, name in names.items():
        write_lora(pipeline.unet, pipeline.text_encoder, folder / name, layout)
    names["other"] = "styles/tiny-other.safetensors"
    write_lora(pipeline.unet, pipeline.text_encoder, folder / names["other"], seed=1)
    yield names
    shutil.rmtree(folder, ignore_errors=True)


def _expected(pipeline: Any, strength: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Each patched weight by the formula W + strength·(alpha/r)·up·down."""
    roots = {"unet": pipeline.unet, "text_encoder": pipeline.text_encoder}
    expected = {}
    for (root, name), (up, down) in lora_pairs(pipeline.unet, pipeline.text_encoder,
                                               seed).items():
        weight = roots[root].get_parameter(f"{name}.weight")
        delta = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape) * (ALPHA / RANK)
        expected[f"{root}:{name}"] = weight.detach() + strength * delta
    return expected


def _weights(patcher: Patcher, keys: list[str]) -> dict[str, torch.Tensor]:
    out = {}
    for key in keys:
        root, name = key.split(":")
        out[key] = patcher.roots[root].get_parameter(f"{name}.weight").detach().clone()
    return out


def test_every_layout_patches_the_formulas_weights_and_restores_them(pipeline, loras):
    expected = _expected(pipeline, 0.7)
    patcher = Patcher({"unet": pipeline.unet, "text_encoder": pipeline.text_encoder})
    before = {k: v.detach().clone() for k, v in pipeline.unet.state_dict().items()}
    for layout in LAYOUTS:
        patcher.use([(LORAS.path() / loras[layout], 0.7)])
        got = _weights(patcher, list(expected))
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)
    # a conv weight (SD 1's 1x1 proj_in) was among them
    assert any("proj_in" in key for key in expected) and len(expected) >= 10
    patcher.use([])
    for name, value in pipeline.unet.state_dict().items():
        assert torch.equal(value, before[name]), name  # the originals are back as they were


def test_chained_loras_add_and_a_negative_strength_subtracts(pipeline, loras):
    patcher = Patcher({"unet": pipeline.unet})
    first, second = _expected(pipeline, 1.0), _expected(pipeline, -0.5, seed=1)
    base = {k: v for k, v in _weights(patcher, [k for k in first if k.startswith("unet")]).items()}
    patcher.use([(LORAS.path() / loras["kohya"], 1.0), (LORAS.path() / loras["other"], -0.5)])
    got = _weights(patcher, list(base))
    for key in base:
        torch.testing.assert_close(got[key], first[key] + second[key] - base[key],
                                   rtol=1e-5, atol=1e-6)
    patcher.use([])


def test_a_file_that_is_no_lora_or_fits_another_model_is_a_clear_error(pipeline, loras,
                                                                       model_store, tmp_path):
    with pytest.raises(LoraError, match="no LoRA weights"):
        read_pairs(model_store.weights(model_store.get(TINY_CHECKPOINT)))
    from nodes.backends.diffusers_sd import DiffusersBackend

    manifest = model_store.get(TINY_SDXL)
    sdxl = DiffusersBackend(manifest, model_store.weights(manifest), "cpu").base
    foreign = write_lora(sdxl.unet, sdxl.text_encoder, tmp_path / "xl.safetensors")
    patcher = Patcher({"unet": pipeline.unet})
    before = pipeline.unet.state_dict()["conv_in.weight"].clone()
    with pytest.raises(LoraError, match="names no layer"):
        patcher.use([(foreign, 1.0)])
    assert patcher.applied == () and torch.equal(pipeline.unet.state_dict()["conv_in.weight"],
                                                 before)


def _prompt(lora: dict[str, Any] | None) -> dict[str, Any]:
    if not lora:
        return txt2img(seed=11, cfg=5.0, prefix="lora")
    return txt2img(seed=11, cfg=5.0, prefix="lora", model=["10", 0], clip=["10", 1], **{
        "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1],
                                                      **lora}}})


def _draw(executor, lora: dict[str, Any] | None) -> np.ndarray:
    result = executor.run(graph_from_comfy(_prompt(lora)), {}, timeout=300)
    assert result.status == "success", result.error
    (picture,) = saved(result, "9")
    return picture


def test_lora_graphs_share_the_host_without_seeing_each_others_patches(executor, loras):
    def lora(model: float, clip: float, name: str = loras["kohya"]) -> dict[str, Any]:
        return {"lora_name": name, "strength_model": model, "strength_clip": clip}

    plain = _draw(executor, None)
    assert np.abs(_draw(executor, lora(0.0, 0.0)) - plain).max() <= 1
    both = _draw(executor, lora(8.0, 8.0))
    unet_only = _draw(executor, lora(8.0, 0.0))
    clip_only = _draw(executor, lora(0.0, 8.0))
    for patched in (both, unet_only, clip_only):
        assert np.abs(patched - plain).mean() > 0.5
    assert np.abs(both - unet_only).mean() > 0.5 and np.abs(both - clip_only).mean() > 0.5
    # the same pairs in diffusers' layout draw the same picture
    assert np.abs(_draw(executor, lora(8.0, 8.0, loras["peft"])) - both).max() <= 2
    # and a graph without the LoRA, on the same host afterwards, draws as before
    assert np.abs(_draw(executor, None) - plain).max() <= 1


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_a_missing_lora_is_refused_at_validation_with_the_folders_files(executor, loras):
    prompt = _prompt({"lora_name": "nope.safetensors", "strength_model": 1.0,
                      "strength_clip": 1.0})
    with pytest.raises(GraphValidationError) as refused:
        executor.prepare(graph_from_comfy(prompt))
    (issue,) = refused.value.issues
    assert (issue.node_id, issue.input) == ("10", "lora_name")
    assert "'nope.safetensors' not in" in issue.message
    assert "styles/tiny-other.safetensors" in issue.message


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_object_info_lists_the_loaders_and_the_loras_folder(registry, executor, loras):
    with TestClient(create_app(get_settings(), registry, executor)) as client:
        info = client.get("/object_info").json()
    loader = info["LoraLoader"]
    assert (loader["category"], loader["display_name"], loader["output"]) == \
        ("loaders", "Load LoRA", ["MODEL", "CLIP"])
    assert loader["input_order"]["required"] == ["model", "clip", "lora_name",
                                                 "strength_model", "strength_clip"]
    assert loader["input"]["required"]["lora_name"][0] == sorted(loras.values())
    assert loader["input"]["required"]["strength_model"][1] == {
        "default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
        "tooltip": "How strongly to modify the diffusion model. This value can be negative."}
    for name, category in (("UNETLoader", "advanced/loaders"), ("CLIPLoader",
                           "advanced/loaders"), ("DualCLIPLoader", "advanced/loaders"),
                           ("LoraLoaderModelOnly", "loaders")):
        assert info[name]["category"] == category
    assert info["DualCLIPLoader"]["input"]["optional"]["device"][0] == ["default", "cpu"]
