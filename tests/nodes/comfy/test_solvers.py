"""ComfyUI's newer samplers (nodes.backends.solvers) against answers known in closed form.

The data are Gaussian, N(μ, s²) per element: the exact denoiser is
D(x, σ) = (s²·x + σ²·μ)/(s² + σ²), and the probability-flow ODE dx/dσ = (x − D)/σ that
the deterministic samplers solve carries x from σ_a to σ_b as
x(σ_b) = μ + (x(σ_a) − μ)·√((s² + σ_b²)/(s² + σ_a²)). The SDE samplers must instead end
with samples of N(μ, s²).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from engine.errors import GraphValidationError
from engine.loader import graph_from_comfy
from nodes.backends.ksampler import _SAMPLER_FUNCTIONS, SAMPLERS, Conditioning, Job, Model, sample
from nodes.backends.sigmas import ModelSigmas, schedule
from nodes.backends.solvers import Noise, _lagrange_weights
from tests.nodes.comfy.prompts import txt2img

SD1 = ModelSigmas.from_config({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                               "beta_end": 0.012})
MU, S = 0.3, 1.0

# COMFY-CORE-NODES.md §3.5: every sampler_name, in ComfyUI's order.
COMFY_ORDER = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis",
    "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp",
    "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc",
    "uni_pc_bh2")
ODE_SOLVERS = ("lms", "uni_pc", "uni_pc_bh2", "res_multistep", "ipndm", "deis", "dpmpp_2m")
SDE_SOLVERS = ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde")
# Two model calls a step (one on the step onto σ = 0); the rest make one.
TWO_CALLS = {"dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2s_ancestral", "heun", "dpm_2",
             "dpm_2_ancestral"}


def _gaussian_x0(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (S ** 2 * x + sigma ** 2 * MU) / (S ** 2 + sigma ** 2)


def _exact(x: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
    return MU + (x - MU) * math.sqrt((S ** 2 + sigma_to ** 2) / (S ** 2 + sigma_from ** 2))


def _solve(name: str, sigmas: list[float], x: torch.Tensor, seed: int = 0,
           calls: list[float] | None = None) -> torch.Tensor:
    """Run one sampler on the Gaussian's denoiser (recording the σ of each call); it must
    report each step once, in order (the progress the host streams)."""
    levels = torch.tensor(sigmas, dtype=torch.float32)

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(float(sigma))
        return _gaussian_x0(x, sigma)

    steps = _SAMPLER_FUNCTIONS[name](denoise, x, levels, Noise(seed, "cpu", levels))
    reported = []
    while True:
        try:
            reported.append(next(steps)[0])
        except StopIteration as finished:
            assert reported == list(range(len(sigmas) - 1)), (name, reported)
            return finished.value


def _ode_error(name: str, steps: int) -> float:
    """The largest distance from the exact ODE solution after ``steps`` karras steps."""
    sigmas = schedule(SD1, "karras", steps, sampler=name)
    start = MU + sigmas[0] * torch.randn(256, generator=torch.Generator().manual_seed(1))
    end = 0.001 if name.startswith("uni_pc") else sigmas[-1]  # UniPC stops at 0.001
    return float((_solve(name, sigmas, start) - _exact(start, sigmas[0], end)).abs().max())


def test_the_samplers_are_comfyuis_names_in_its_order():
    assert set(SAMPLERS) == set(_SAMPLER_FUNCTIONS)
    assert list(SAMPLERS) == [name for name in COMFY_ORDER if name in SAMPLERS]
    assert SAMPLERS[0] == "euler" and len(SAMPLERS) == 24


@pytest.mark.parametrize("name", ODE_SOLVERS)
def test_deterministic_solvers_converge_to_the_exact_ode_solution(name):
    # x starts within about ±44 and ends within about ±3; Euler misses by 0.26 at 20 steps.
    coarse, fine = _ode_error(name, 5), _ode_error(name, 20)
    assert fine < 0.07 and fine < coarse / 2, (name, coarse, fine)


@pytest.mark.parametrize("name", ODE_SOLVERS)
def test_higher_order_solvers_beat_euler_at_equal_steps(name):
    # Euler's error halves with twice the steps; theirs falls faster (second order and up).
    assert _ode_error(name, 10) < _ode_error("euler", 10) / 1.5
    assert _ode_error(name, 20) < _ode_error("euler", 20) / 3


def test_lms_weights_integrate_cubics_exactly():
    levels = [1.0, 1.7, 2.9, 4.4]  # the newest σ first, as a step sees them
    weights = _lagrange_weights(levels, 1.0, 0.6, lambda sigma: sigma)

    def cubic(sigma: float) -> float:
        return 2 * sigma ** 3 - sigma ** 2 + 0.5 * sigma - 3

    def antiderivative(sigma: float) -> float:
        return sigma ** 4 / 2 - sigma ** 3 / 3 + sigma ** 2 / 4 - 3 * sigma

    integral = antiderivative(0.6) - antiderivative(1.0)
    assert sum(w * cubic(s) for w, s in zip(weights, levels, strict=True)) == \
        pytest.approx(integral, rel=1e-9)


def test_brownian_increments_are_standard_normal_and_lie_on_one_path():
    levels = torch.tensor(schedule(SD1, "karras", 8), dtype=torch.float32)
    x = torch.zeros(4, 4, 32, 32)  # 16384 elements
    noise = Noise(5, "cpu", levels)
    a, b, c = levels[1], levels[3], levels[6]
    for sigma, sigma_next in ((a, b), (b, c), (levels[0], levels[-2])):
        draw = noise.brownian(x, sigma, sigma_next)
        assert draw.shape == x.shape
        assert abs(float(draw.std()) - 1) < 0.05 and abs(float(draw.mean())) < 0.05
    # One path: W(c) − W(a) = (W(b) − W(a)) + (W(c) − W(b)), and the two parts are
    # independent.
    first = noise.brownian(x, a, b) * (a - b).sqrt()
    second = noise.brownian(x, b, c) * (b - c).sqrt()
    whole = noise.brownian(x, a, c) * (a - c).sqrt()
    assert torch.allclose(first + second, whole, atol=1e-4)
    correlation = torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1]
    assert abs(float(correlation)) < 0.05
    # Asked in either direction, the increment changes sign only.
    assert torch.allclose(noise.brownian(x, b, a), -noise.brownian(x, a, b), atol=1e-6)
    again = Noise(5, "cpu", levels).brownian(x, a, b)
    assert torch.equal(again, noise.brownian(x, a, b))
    assert not torch.allclose(Noise(6, "cpu", levels).brownian(x, a, b), again, atol=0.1)


@pytest.mark.parametrize("name", [*SDE_SOLVERS, "dpmpp_2s_ancestral"])
def test_stochastic_samplers_repeat_with_the_seed_and_draw_the_gaussian(name):
    sigmas = schedule(SD1, "karras", 40)
    z = torch.randn(4, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    start = MU + math.sqrt(S ** 2 + sigmas[0] ** 2) * z  # x at σ_max, exactly distributed
    first = _solve(name, sigmas, start, seed=11)
    assert torch.equal(first, _solve(name, sigmas, start, seed=11))
    other = _solve(name, sigmas, start, seed=12)
    assert float((first - other).abs().mean()) > 0.1
    # 16384 samples of N(0.3, 1): one standard error is 0.008 on the mean and 0.6% on the
    # std; the bounds leave room for the solvers' discretization (2% at 40 steps).
    assert abs(float(first.mean()) - MU) < 0.03, float(first.mean())
    assert abs(float(first.std()) / S - 1) < 0.04, float(first.std())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_model_calls_per_step(name):
    sigmas = schedule(SD1, "karras", 6)  # six steps, the last onto σ = 0
    calls: list[float] = []
    _solve(name, sigmas, MU + sigmas[0] * torch.ones(8), calls=calls)
    if name in TWO_CALLS:
        assert len(calls) == 2 * 5 + 1, calls
        assert calls[::2] == pytest.approx(sigmas[:-1], rel=1e-6)
    else:  # one call at each σ but the last, in order
        assert calls == pytest.approx(sigmas[:-1], rel=1e-6)


class _CountingUNet(torch.nn.Module):
    """A stand-in UNet for the host's loop (third-party weights cannot exist here): it
    predicts ε as a fixed fraction of its input and counts its calls."""

    class config:  # noqa: N801 - the attribute diffusers' UNets carry
        in_channels = 4

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x, t, encoder_hidden_states):
        self.calls += 1
        return SimpleNamespace(sample=0.5 * x)


def _sampled(sampler: str, steps: int = 5, seed: int = 3) -> tuple[torch.Tensor, int]:
    """The KSampler loop with a counting UNet at cfg 1 (one UNet call per model call)."""
    unet = _CountingUNet()
    embeds = Conditioning(torch.zeros(1, 77, 8))
    job = Job(latent={"samples": torch.zeros(1, 4, 8, 8)}, positive=[embeds],
              negative=[embeds], seed=seed, steps=steps, cfg=1.0, sampler=sampler,
              scheduler="karras")
    run = sample(Model(unet=unet, sigmas=SD1, scale=0.18215), job)
    while True:
        try:
            next(run)
        except StopIteration as finished:
            return finished.value, unet.calls


@pytest.mark.parametrize("name", ["uni_pc", "uni_pc_bh2"])
def test_uni_pc_walks_the_discard_penultimate_schedule_with_one_call_a_step(name):
    seven = schedule(SD1, "karras", 7)  # six steps are computed as seven, σ₆ dropped
    assert schedule(SD1, "karras", 6, sampler=name) == seven[:-2] + [0.0]
    out, calls = _sampled(name, steps=6)
    assert calls == 6 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun",
                                  "dpmpp_3m_sde"])
def test_gpu_variants_on_a_cpu_host_equal_the_cpu_ones(name):
    cpu, _ = _sampled(name)
    gpu, _ = _sampled(f"{name}_gpu")
    assert torch.equal(cpu, gpu)
    assert not torch.allclose(cpu, _sampled(name, seed=4)[0], atol=1e-3)


def _prompt(sampler: str, seed: int = 7) -> dict:
    return txt2img(seed=seed, steps=3, sampler=sampler, output="latent")


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_sde_and_unipc_samplers_run_on_the_model_host(executor, test_pack):
    def latent(sampler: str) -> torch.Tensor:
        executor.clear_cache()  # each run samples anew
        result = executor.run(graph_from_comfy(_prompt(sampler)), {}, timeout=300)
        assert result.status == "success", result.error
        return result.outputs["latent"]["samples"]

    euler = latent("euler")
    for sampler in ("dpmpp_2m_sde", "uni_pc"):
        first = latent(sampler)
        assert first.shape == (1, 4, 8, 8) and torch.isfinite(first).all()
        assert not torch.allclose(first, euler, atol=1e-3), sampler
        assert torch.equal(first, latent(sampler)), sampler


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_a_sampler_still_missing_is_refused_with_the_list(executor, test_pack):
    with pytest.raises(GraphValidationError) as refused:
        executor.prepare(graph_from_comfy(_prompt("dpm_adaptive")))
    (issue,) = refused.value.issues
    assert (issue.kind, issue.node_id, issue.input) == ("value_not_in_list", "3",
                                                        "sampler_name")
    head, listed = issue.message.split(": ", 1)
    assert head == "'dpm_adaptive' is not one of"
    # every supported name, in ComfyUI's order
    assert listed.split(", ") == [f"'{name}'" for name in SAMPLERS]
