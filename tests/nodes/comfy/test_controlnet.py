"""ComfyUI's ControlNet nodes on the test pack's tiny SD 1.x ControlNet: the file's layout,
graphs on both executors, and the residuals reaching the UNet, checked by hand."""

from __future__ import annotations

import copy
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.executors.base import Executor
from engine.loader import graph_from_comfy
from engine.models.store import ModelStore
from engine.settings import get_settings
from nodes.backends.controlnet import (
    Control,
    ControlNetError,
    ControlNetFile,
    controlnet_arch,
    load_controlnet,
    uncond_controls,
)
from nodes.backends.ksampler import Conditioning, _x0
from nodes.comfy.controlnet import (
    CONTROLNETS,
    ControlNetApply,
    ControlNetApplyAdvanced,
    ControlNetLoader,
)
from nodes.testpack.install import TINY_CHECKPOINT, TINY_CONTROLNET
from tests.nodes.comfy.prompts import txt2img
from tests.nodes.comfy.test_workflows import picture, put, saved

STEPS = 2
TXT2IMG = txt2img(steps=STEPS, prefix="test/controlnet")


def controlled(hint: str, old: bool = False, **apply: Any) -> dict[str, Any]:
    """TXT2IMG with ControlNetLoader + LoadImage → ControlNetApplyAdvanced (or the old
    ControlNetApply on the positive prompt) between the prompts and the KSampler."""
    prompt = copy.deepcopy(TXT2IMG)
    prompt["10"] = {"class_type": "ControlNetLoader",
                    "inputs": {"control_net_name": TINY_CONTROLNET}}
    prompt["11"] = {"class_type": "LoadImage", "inputs": {"image": hint}}
    if old:
        prompt["12"] = {"class_type": "ControlNetApply", "inputs": {
            "conditioning": ["6", 0], "control_net": ["10", 0], "image": ["11", 0],
            "strength": 1.0, **apply}}
        prompt["3"]["inputs"]["positive"] = ["12", 0]
    else:
        prompt["12"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "control_net": ["10", 0],
            "image": ["11", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0,
            **apply}}
        prompt["3"]["inputs"].update(positive=["12", 0], negative=["12", 1])
    return prompt


def sampled(executor: Executor, prompt: dict[str, Any]) -> tuple[torch.Tensor, np.ndarray]:
    """The KSampler's latent and the saved picture of one prompt."""
    graph = graph_from_comfy(prompt).model_copy(update={"outputs": {"latent": "${3.0}"}})
    result = executor.run(graph, {}, timeout=300)
    assert result.status == "success", result.error
    return result.outputs["latent"]["samples"], saved(result, "9")[0]


def tiny_file(model_store: ModelStore) -> Path:
    return model_store.root / "controlnet" / TINY_CONTROLNET


def handle(model_store: ModelStore) -> ControlNetFile:
    path = tiny_file(model_store)
    return ControlNetFile(name=TINY_CONTROLNET, path=str(path), config=str(path.parent),
                          arch="sd1")


# -- the file ------------------------------------------------------------------------------

def test_the_tiny_controlnet_is_one_cldm_file_that_diffusers_loads_back_exactly(
        model_store: ModelStore, test_pack: list[str]):
    from diffusers import ControlNetModel
    from safetensors import safe_open

    from nodes.testpack.controlnet import tiny_controlnet

    path = tiny_file(model_store)
    assert TINY_CONTROLNET in CONTROLNETS.files() and controlnet_arch(path) == "sd1"
    with safe_open(str(path), framework="pt") as opened:
        names = set(opened.keys())
    for part in ("input_blocks.1.1.", "middle_block.1.", "time_embed.0.",
                 "input_hint_block.14.", "zero_convs.0.0.", "middle_block_out.0."):
        assert any(name.startswith(f"control_model.{part}") for name in names), part
    loaded = ControlNetModel.from_single_file(str(path), config=str(path.parent),
                                              local_files_only=True).state_dict()
    built = tiny_controlnet().state_dict()
    assert loaded.keys() == built.keys()
    assert all(torch.equal(loaded[name], built[name]) for name in built)


def test_the_architecture_is_read_from_the_keys(tmp_path: Path):
    from safetensors.torch import save_file

    cldm = {"control_model.input_hint_block.0.weight": torch.zeros(16, 3, 3, 3),
            "control_model.zero_convs.0.0.weight": torch.zeros(4, 4, 1, 1)}
    for name, extra, arch in (
            ("sd15.safetensors", {}, "sd1"),
            ("sd21.safetensors", {"control_model.input_blocks.1.1.transformer_blocks.0.attn2"
                                  ".to_k.weight": torch.zeros(320, 1024)}, "sd2"),
            ("xl.safetensors", {"control_model.label_emb.0.0.weight": torch.zeros(4, 4)},
             "sdxl"),
            ("xl-diffusers.safetensors", {"controlnet_cond_embedding.conv_in.weight":
                                          torch.zeros(16, 3, 3, 3),
                                          "add_embedding.linear_1.weight": torch.zeros(4, 4)},
             "sdxl")):
        save_file({**(cldm if "diffusers" not in name else {}), **extra},
                  str(tmp_path / name))
        assert controlnet_arch(tmp_path / name) == arch, name


def test_files_that_are_not_pixel_space_controlnets_are_refused(tmp_path: Path):
    from safetensors.torch import save_file

    flux = tmp_path / "flux-controlnet.safetensors"
    save_file({"controlnet_blocks.0.weight": torch.zeros(2, 2),
               "controlnet_x_embedder.weight": torch.zeros(2, 2)}, str(flux))
    with pytest.raises(ControlNetError, match="latent-space ControlNet"):
        controlnet_arch(flux)
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down_blocks_0.alpha": torch.zeros(1)}, str(lora))
    with pytest.raises(ControlNetError, match="not a ControlNet"):
        controlnet_arch(lora)


def test_a_controlnet_without_a_config_names_where_it_goes(model_store: ModelStore,
                                                           test_pack: list[str]):
    """A loose file with no config.json beside it: the loader's error names the shared
    config path; once the config is there, the loader uses it."""
    loose = CONTROLNETS.path() / "loose" / "control_tiny.safetensors"
    loose.parent.mkdir(parents=True)
    shutil.copy(tiny_file(model_store), loose)
    shared = get_settings().models_dir / "configs" / "sd1" / "controlnet"
    loader = ControlNetLoader(control_net_name="loose/control_tiny.safetensors")
    try:
        with pytest.raises(Exception, match="configs/sd1/controlnet/config.json"):
            loader.run(None)
        shared.mkdir(parents=True)
        shutil.copy(tiny_file(model_store).parent / "config.json", shared)
        net = loader.run(None).CONTROL_NET
        assert (net.arch, Path(net.config), Path(net.path)) == ("sd1", shared, loose.resolve())
    finally:
        shutil.rmtree(loose.parent)
        # test_loader copies a whole configs/sd1 folder in: leave no trace of ours
        shutil.rmtree(shared, ignore_errors=True)
        for folder in (shared.parent, shared.parent.parent):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


# -- graphs --------------------------------------------------------------------------------

def test_a_controlnet_steers_txt2img_and_its_hint_matters(executor: Executor,
                                                          test_pack: list[str],
                                                          input_dir: Path):
    first = put(input_dir, "edges.png", picture(1))
    # another picture of another size: resized to 64×64 (centre crop, nearest-exact)
    second = put(input_dir, "depth.png", picture(2, (80, 48)))
    plain, plain_pixels = sampled(executor, TXT2IMG)
    steered, steered_pixels = sampled(executor, controlled(first))
    other, _ = sampled(executor, controlled(second))
    assert steered.shape == plain.shape == (1, 4, 8, 8)
    assert float((steered - plain).abs().mean()) > 1e-2
    assert float((other - steered).abs().mean()) > 1e-2
    assert np.abs(steered_pixels - plain_pixels).mean() > 0.5
    # strength 0 returns the conditioning untouched: exactly the plain graph's draw
    off, _ = sampled(executor, controlled(first, strength=0.0))
    assert torch.equal(off, plain)
    # end_percent 0 ends the window at σ = ∞: no step is steered
    outside, _ = sampled(executor, controlled(first, end_percent=0.0))
    assert torch.allclose(outside, plain, atol=1e-5)


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_the_old_apply_on_the_positive_steers_the_negative_too(executor: Executor,
                                                               test_pack: list[str],
                                                               input_dir: Path):
    """ControlNetApply sets control_apply_to_uncond, so the sampler copies its control
    onto the negative prompt: the same draw as ControlNetApplyAdvanced on both."""
    hint = put(input_dir, "hint.png", picture(3))
    old, _ = sampled(executor, controlled(hint, old=True, strength=0.8))
    advanced, _ = sampled(executor, controlled(hint, strength=0.8))
    plain, _ = sampled(executor, TXT2IMG)
    assert torch.allclose(old, advanced, atol=1e-5)
    assert float((old - plain).abs().mean()) > 1e-2


# -- the nodes' conditioning ---------------------------------------------------------------

def test_apply_nodes_chain_controls_and_share_them_between_prompts(model_store: ModelStore,
                                                                   test_pack: list[str]):
    net = handle(model_store)
    image = torch.rand(1, 16, 24, 3)
    positive = [[torch.zeros(1, 77, 32), {"pooled_output": None}],
                [torch.ones(1, 77, 32), {}]]
    negative = [[torch.zeros(1, 77, 32), {}]]

    old = ControlNetApply(conditioning=positive, control_net=net, image=image,
                          strength=0.5).run(None).CONDITIONING
    assert [extra["control_apply_to_uncond"] for _, extra in old] == [True, True]
    assert old[0][1]["control"].key != old[1][1]["control"].key  # one control per entry
    assert old[0][1]["control"].hint.shape == (1, 3, 16, 24)
    assert "control" not in positive[0][1]  # the input is not changed
    again = ControlNetApply(conditioning=old, control_net=net, image=image,
                            strength=1.5).run(None).CONDITIONING
    assert [c.strength for c in again[0][1]["control"].chain()] == [1.5, 0.5]
    same = ControlNetApply(conditioning=old, control_net=net, image=image, strength=0.0)
    assert same.run(None).CONDITIONING is old

    advanced = ControlNetApplyAdvanced(
        positive=old, negative=negative, control_net=net, image=image, strength=0.7,
        start_percent=0.2, end_percent=0.9).run(None)
    (first, second), (uncond,) = advanced.positive, advanced.negative
    # entries that had different controls get different new ones, chained to theirs;
    # the negative (no control before) gets a control of its own
    assert first[1]["control"].previous is old[0][1]["control"]
    assert second[1]["control"].previous is old[1][1]["control"]
    assert len({first[1]["control"].key, second[1]["control"].key,
                uncond[1]["control"].key}) == 3
    assert not first[1]["control_apply_to_uncond"]
    both = ControlNetApplyAdvanced(positive=negative, negative=negative, control_net=net,
                                   image=image, strength=0.7).run(None)
    assert both.positive[0][1]["control"] is both.negative[0][1]["control"]
    assert (both.positive[0][1]["control"].start_percent,
            both.positive[0][1]["control"].end_percent) == (0.0, 1.0)


def test_the_sampler_copies_apply_to_uncond_controls_onto_the_negative(
        model_store: ModelStore, test_pack: list[str]):
    control = Control(net=handle(model_store), hint=torch.rand(1, 3, 8, 8), strength=1.0)
    negative = [[torch.zeros(1, 77, 32), {}]]
    marked = [[torch.ones(1, 77, 32), {"control": control, "control_apply_to_uncond": True}]]
    unmarked = [[torch.ones(1, 77, 32), {"control": control}]]
    assert uncond_controls(marked, negative)[0][1]["control"] is control
    assert "control" not in negative[0][1]
    assert uncond_controls(unmarked, negative) is negative
    own = [[torch.zeros(1, 77, 32), {"control": control.model_copy(update={"key": "x"})}]]
    assert uncond_controls(marked, own) is own


# -- the host's UNet call ------------------------------------------------------------------

@pytest.fixture(scope="module")
def host(model_store: ModelStore, test_pack: list[str]) -> Any:
    from nodes.backends.diffusers_sd import DiffusersBackend

    manifest = model_store.get(TINY_CHECKPOINT)
    return DiffusersBackend(manifest, model_store.weights(manifest), "cpu")


@pytest.fixture(scope="module")
def by_hand(model_store: ModelStore, test_pack: list[str]) -> Any:
    path = tiny_file(model_store)
    return load_controlnet(path, path.parent)


def hand_x0(host: Any, net: Any, x: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor,
            hints: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """x0 from diffusers' own calls: each ControlNet with ``conditioning_scale``, their
    residuals summed into the UNet (ε prediction)."""
    model = host.sampling_model()
    c_in = 1.0 / math.sqrt(float(sigma) ** 2 + 1.0)
    timestep = model.sigmas.timestep(sigma.reshape(1)).float()
    down, mid = None, None
    with torch.no_grad():
        for hint, strength in hints:
            d, m = net(x * c_in, timestep, encoder_hidden_states=embeds, controlnet_cond=hint,
                       conditioning_scale=strength, return_dict=False)
            down = list(d) if down is None else [a + b for a, b in zip(down, d, strict=True)]
            mid = m if mid is None else mid + m
        eps = host.base.unet(x * c_in, timestep, encoder_hidden_states=embeds,
                             down_block_additional_residuals=down,
                             mid_block_additional_residual=mid).sample
    return x - eps * sigma


def centre_resized(hint: torch.Tensor, size: int) -> torch.Tensor:
    """A wide hint cut to its middle square, then nearest-exact to size × size."""
    width, height = hint.shape[-1], hint.shape[-2]
    cut = (width - height) // 2
    square = hint[..., :, cut:cut + height]
    return torch.nn.functional.interpolate(square, size=(size, size), mode="nearest-exact")


def test_one_model_call_adds_the_scaled_residuals_of_chained_controlnets(
        host: Any, by_hand: Any, model_store: ModelStore):
    model = host.sampling_model()
    generator = torch.Generator().manual_seed(11)
    x = torch.randn((1, 4, 8, 8), generator=generator) * 3.0
    sigma = torch.tensor(3.0)
    embeds = host.encode_text("a red fox")[0][0]
    wide = torch.rand((1, 3, 48, 80), generator=generator)  # resized and cropped to 64×64
    square = torch.rand((1, 3, 64, 64), generator=generator)
    first = Control(net=handle(model_store), hint=wide, strength=0.7)
    chained = Control(net=handle(model_store), hint=square, strength=1.3, previous=first)

    (one,) = _x0(model, x, sigma, [Conditioning(embeds, {"control": first})], 1)
    expected = hand_x0(host, by_hand, x, sigma, embeds, [(centre_resized(wide, 64), 0.7)])
    assert torch.allclose(one, expected, atol=1e-5)
    (plain,) = _x0(model, x, sigma, [Conditioning(embeds, {})], 1)
    assert float((one - plain).abs().max()) > 1e-2

    (two,) = _x0(model, x, sigma, [Conditioning(embeds, {"control": chained})], 1)
    expected = hand_x0(host, by_hand, x, sigma, embeds,
                       [(centre_resized(wide, 64), 0.7), (square, 1.3)])
    assert torch.allclose(two, expected, atol=1e-5)


def test_the_batched_negative_gets_residuals_only_when_it_carries_a_control(
        host: Any, model_store: ModelStore):
    model = host.sampling_model()
    x = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor(1.5)
    positive, negative = host.encode_text("a red fox")[0][0], host.encode_text("")[0][0]
    control = Control(net=handle(model_store), hint=torch.rand(2, 3, 64, 64), strength=1.0)
    steered = Conditioning(positive, {"control": control})
    pos, neg = _x0(model, x, sigma, [steered, Conditioning(negative, {})], 2)
    (alone,) = _x0(model, x, sigma, [steered], 2)
    (plain_neg,) = _x0(model, x, sigma, [Conditioning(negative, {})], 2)
    assert torch.allclose(pos, alone, atol=1e-5)
    assert torch.allclose(neg, plain_neg, atol=1e-5)
    # sharing the control (one ControlNet call for both halves) = each on its own
    pos, neg = _x0(model, x, sigma, [steered, Conditioning(negative, {"control": control})], 2)
    (neg_alone,) = _x0(model, x, sigma, [Conditioning(negative, {"control": control})], 2)
    assert torch.allclose(pos, alone, atol=1e-5) and torch.allclose(neg, neg_alone, atol=1e-5)
    assert float((neg - plain_neg).abs().max()) > 1e-2


def test_the_window_is_in_sigma_from_fractions_of_the_training_timesteps(
        host: Any, model_store: ModelStore):
    model = host.sampling_model()
    x = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(6))
    embeds = host.encode_text("a cat")[0][0]
    # start_percent 0.1 starts at σ(timestep 899.1) ≈ 8.31 in SD 1's table; end_percent
    # 0.5 ends at σ(timestep 499.5) ≈ 1.62
    early, late = float(model.sigmas.sigma(899.1)), float(model.sigmas.sigma(499.5))
    assert abs(early - 8.307) < 1e-3 and abs(late - 1.6156) < 1e-3
    control = Control(net=handle(model_store), hint=torch.rand(1, 3, 64, 64), strength=1.0,
                      start_percent=0.1, end_percent=0.5)
    for sigma, active in ((14.0, False), (early * 1.001, False), (early * 0.999, True),
                          (4.0, True), (late * 1.001, True), (late * 0.999, False)):
        sigma_t = torch.tensor(sigma)
        (with_control,) = _x0(model, x, sigma_t, [Conditioning(embeds, {"control": control})], 1)
        (without,) = _x0(model, x, sigma_t, [Conditioning(embeds, {})], 1)
        assert (float((with_control - without).abs().max()) > 1e-4) == active, sigma


# -- through ComfyUI's API ----------------------------------------------------------------

@pytest.fixture
def client(registry, executor, test_pack) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from server.app import create_app

    with TestClient(create_app(get_settings(), registry, executor)) as client:
        yield client


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_a_missing_controlnet_is_refused_by_prompt_and_nothing_runs(client, input_dir):
    prompt = controlled(put(input_dir, "hint.png", picture(4)))
    prompt["10"]["inputs"]["control_net_name"] = "nope.safetensors"
    before = len(client.get("/history").json())
    answer = client.post("/prompt", json={"prompt": prompt})
    assert answer.status_code == 400, answer.text
    (error,) = answer.json()["node_errors"]["10"]["errors"]
    assert error["extra_info"]["input_name"] == "control_net_name"
    assert "'nope.safetensors' not in" in error["details"] and TINY_CONTROLNET in error["details"]
    assert answer.json()["node_errors"]["10"]["class_type"] == "ControlNetLoader"
    assert len(client.get("/history").json()) == before


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_object_info_lists_the_controlnet_nodes_as_comfyui_does(client):
    info = client.get("/object_info").json()
    assert {name: (info[name]["category"], info[name]["display_name"], info[name]["output"])
            for name in ("ControlNetLoader", "ControlNetApply", "ControlNetApplyAdvanced")} == {
        "ControlNetLoader": ("loaders", "Load ControlNet Model", ["CONTROL_NET"]),
        "ControlNetApply": ("conditioning/controlnet", "Apply ControlNet (OLD)",
                            ["CONDITIONING"]),
        "ControlNetApplyAdvanced": ("conditioning/controlnet", "Apply ControlNet",
                                    ["CONDITIONING", "CONDITIONING"])}
    advanced = info["ControlNetApplyAdvanced"]
    assert advanced["input_order"] == {
        "required": ["positive", "negative", "control_net", "image", "strength",
                     "start_percent", "end_percent"], "optional": ["vae"]}
    assert advanced["output_name"] == ["positive", "negative"]
    assert advanced["input"]["required"]["end_percent"][1] == {
        "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}
    assert info["ControlNetApply"]["input"]["required"]["strength"][1] == {
        "default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}
    assert TINY_CONTROLNET in info["ControlNetLoader"]["input"]["required"][
        "control_net_name"][0]
