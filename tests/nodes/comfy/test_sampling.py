"""ComfyUI's KSampler semantics: its σ schedules, prompt weights, noise and graphs."""

from __future__ import annotations

import pytest
import torch

from engine.loader import graph_from_comfy
from nodes.backends.ksampler import Job, Model, initial_noise, sample
from nodes.backends.prompt import chunks, weighted_segments
from nodes.backends.sigmas import ModelSigmas, schedule
from nodes.testpack.install import TINY_CHECKPOINT, TINY_SD
from tests.nodes.comfy.prompts import txt2img

SD1 = ModelSigmas.from_config({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                               "beta_end": 0.012})

# COMFY-CORE-NODES.md §3.4: σ₀…σ₉ at 10 steps on SD1's table (the final 0 omitted).
TABLE = {
    "normal": [14.6146, 7.8399, 4.6092, 2.9183, 1.9502, 1.3449, 0.9324, 0.6250, 0.3687, 0.0292],
    "sgm_uniform": [14.6146, 8.3072, 5.0924, 3.3251, 2.2797, 1.6156, 1.1629, 0.8319, 0.5712,
                    0.3437],
    "simple": [14.6146, 8.3028, 5.0878, 3.3211, 2.2765, 1.6129, 1.1606, 0.8299, 0.5693, 0.3417],
    "karras": [14.6146, 9.1029, 5.4784, 3.1686, 1.7494, 0.9141, 0.4469, 0.2014, 0.0819, 0.0292],
    "exponential": [14.6146, 7.3249, 3.6712, 1.8400, 0.9222, 0.4622, 0.2317, 0.1161, 0.0582,
                    0.0292],
    "ddim_uniform": [8.3907, 5.1344, 3.3478, 2.2929, 1.6237, 1.1682, 0.8357, 0.5741, 0.3462,
                     0.0413],
    "beta": [14.6146, 11.5428, 7.3718, 4.3728, 2.6152, 1.6183, 1.0273, 0.6549, 0.3955, 0.1991],
    "kl_optimal": [14.6146, 4.2324, 2.3937, 1.5971, 1.1330, 0.8152, 0.5729, 0.3725, 0.1953,
                   0.0292],
}


@pytest.mark.parametrize("scheduler", sorted(TABLE))
def test_ten_step_schedules_match_comfyuis_sd1_table(scheduler):
    sigmas = schedule(SD1, scheduler, 10)
    assert sigmas[-1] == 0.0 and len(sigmas) == 11
    assert sigmas[:-1] == pytest.approx(TABLE[scheduler], abs=1e-4)


def test_denoise_and_sampler_quirks_shape_the_schedule():
    # karras, 10 steps at denoise 0.5: the last 11 of a 20-step schedule, from σ 1.0908
    half = schedule(SD1, "karras", 10, denoise=0.5)
    assert len(half) == 11 and half[0] == pytest.approx(1.0908, abs=1e-4)
    assert schedule(SD1, "karras", 10, denoise=0.0) == []
    assert len(schedule(SD1, "ddim_uniform", 30)) == 32  # 31 σ and the 0: more than asked
    # dpm_2 computes 11 steps and drops the second to last σ
    eleven = schedule(SD1, "karras", 11)
    assert schedule(SD1, "karras", 10, sampler="dpm_2") == eleven[:-2] + [0.0]


def test_prompt_weights_and_escapes_parse_as_comfyui_does():
    assert weighted_segments("a (red:1.3) ((fox)) \\(x\\)") == [
        ("a ", 1.0), ("red", 1.3), (" ", 1.0), ("fox", pytest.approx(1.21)),
        (" (x)", 1.0)]
    assert weighted_segments("(sky:oops)") == [("sky:oops", pytest.approx(1.1))]


def test_long_prompts_are_cut_into_77_token_chunks(model_store, test_pack):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(model_store.folder(TINY_SD) / "weights" /
                                                  "tokenizer"))
    pieces = chunks(tokenizer, " ".join(["fox"] * 100))
    assert [len(p) for p in pieces] == [77, 77]
    first, second = ([t for t, _ in p] for p in pieces)
    fox = tokenizer("fox", add_special_tokens=False)["input_ids"]
    assert first[0] == tokenizer.bos_token_id and first[1:76] == fox * 75
    assert first[76] == tokenizer.eos_token_id
    assert second[1:26] == fox * 25 and set(second[26:]) == {tokenizer.eos_token_id}
    weighted = chunks(tokenizer, "(fox:1.5) sky")
    assert [w for _, w in weighted[0][:4]] == [1.0, 1.5, 1.0, 1.0]


def test_initial_noise_is_a_cpu_randn_seeded_with_the_seed():
    samples = torch.zeros(2, 4, 8, 8)
    expected = torch.randn((2, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(42))
    assert torch.equal(initial_noise(samples, 42, None), expected)
    # batch_index: single draws in order, the listed ones picked
    draws = torch.Generator("cpu").manual_seed(42)
    singles = [torch.randn((1, 4, 8, 8), generator=draws) for _ in range(3)]
    assert torch.equal(initial_noise(samples, 42, [2, 0]), torch.cat([singles[2], singles[0]]))


class _Echo(torch.nn.Module):
    """A stand-in UNet for the loop's arithmetic (third-party weights cannot exist here):
    it predicts ε as a fixed fraction of its input."""

    class config:  # noqa: N801 - the attribute diffusers' UNets carry
        in_channels = 4

    def forward(self, x, t, encoder_hidden_states):
        class Out:
            sample = 0.5 * x
        return Out()


def _job(**overrides) -> Job:
    conditioning = [torch.zeros(1, 77, 8)]
    from nodes.backends.ksampler import Conditioning

    settings = dict(latent={"samples": torch.ones(1, 4, 8, 8)},
                    positive=[Conditioning(conditioning[0])],
                    negative=[Conditioning(conditioning[0])], seed=3, steps=4, cfg=7.0,
                    sampler="euler", scheduler="karras")
    settings.update(overrides)
    return Job(**settings)


def _run(job: Job):
    steps = sample(Model(unet=_Echo(), sigmas=SD1, scale=0.18215), job)
    seen = []
    while True:
        try:
            seen.append(next(steps)[:2])
        except StopIteration as done:
            return done.value, seen


def test_denoise_zero_returns_the_latent_and_steps_are_reported():
    latent = torch.rand(1, 4, 8, 8)
    out, seen = _run(_job(latent={"samples": latent}, denoise=0.0))
    assert torch.equal(out, latent) and seen == []
    out, seen = _run(_job())
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and out.shape == (1, 4, 8, 8)


def test_the_noise_mask_keeps_the_unmasked_latent():
    latent = torch.rand(1, 4, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0  # repaint the left half only
    for sampler in ("euler", "euler_ancestral", "heun", "dpmpp_2m", "lcm"):
        out, _ = _run(_job(latent={"samples": latent, "noise_mask": mask}, sampler=sampler))
        assert torch.allclose(out[..., 4:], latent[..., 4:], atol=1e-5), sampler
        assert not torch.allclose(out[..., :4], latent[..., :4], atol=1e-3), sampler


def test_advanced_start_and_end_cut_the_schedule():
    from nodes.backends.ksampler import sigmas_for

    model = Model(unet=_Echo(), sigmas=SD1, scale=0.18215)
    full = sigmas_for(model, _job(steps=10))
    assert sigmas_for(model, _job(steps=10, end_at_step=4)) == full[:4] + [0.0]
    assert sigmas_for(model, _job(steps=10, end_at_step=4, leftover_noise=True)) == full[:5]
    assert sigmas_for(model, _job(steps=10, start_at_step=6)) == full[6:]
    assert sigmas_for(model, _job(steps=10, start_at_step=10)) == []


TXT2IMG = txt2img(steps=3, output="PreviewImage")


def test_a_core_node_graph_samples_on_the_model_host(executor, test_pack):
    graph = graph_from_comfy(TXT2IMG)
    events = []
    result = executor.run(graph, {}, listener=events.append, timeout=300)
    assert result.status == "success", result.error
    steps = [(e.data["value"], e.data["max"]) for e in events
             if e.type == "node_progress" and e.node_id == "3"]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert any(e.data.get("preview") for e in events if e.type == "node_progress")
    (shown,) = result.ui["9"]["images"]
    assert shown["type"] == "temp" and shown["filename"].endswith(".png")


def test_the_core_graph_draws_the_pixels_of_text_to_image_with_the_same_settings(executor,
                                                                               test_pack):
    """Where both describe one computation (ComfyUI's euler/karras, the same prompt, cfg,
    steps and seed), the core-node graph and image.TextToImage give the same pixels."""
    import numpy as np
    from PIL import Image

    from engine.files import FileStore
    from engine.settings import get_settings

    prompt = {**TXT2IMG, "5": {"class_type": "EmptyLatentImage",
                               "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    prompt.pop("9")
    prompt["10"] = {"class_type": "image.Save", "inputs": {"image": ["8", 0]}}
    core = executor.run(graph_from_comfy(prompt), {}, timeout=300)
    assert core.status == "success", core.error
    ours = executor.run(graph_from_comfy({"1": {"class_type": "image.TextToImage", "inputs": {
        "model": TINY_CHECKPOINT, "prompt": "a red fox", "negative_prompt": "", "width": 64,
        "height": 64, "steps": 3, "cfg": 6.0, "seed": 7, "sampler": "euler",
        "scheduler": "karras"}}, "2": {"class_type": "image.Save",
                                       "inputs": {"image": ["1", 0]}}}), {}, timeout=300)
    assert ours.status == "success", ours.error
    store = FileStore(get_settings().home / "files")

    def saved(result, node):
        (entry,) = result.ui[node]["images"]
        with Image.open(store.path(entry["filename"])) as image:
            return np.asarray(image.convert("RGB"))

    assert saved(core, "10").shape == (64, 64, 3)
    assert np.array_equal(saved(core, "10"), saved(ours, "2"))
