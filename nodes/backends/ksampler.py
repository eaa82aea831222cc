"""ComfyUI's KSampler on a diffusers UNet: the same noise, σ, model calls and samplers.

The loop is k-diffusion's, as ComfyUI runs it: x lives at noise level σ; the *denoiser*
``D(x, σ)`` asks the UNet for the clean latent (classifier-free guidance applied to the x0
predictions); a sampler moves x down the σ schedule. Latents arrive raw (as the VAE
encodes them) and leave raw; inside they are in model space (× the VAE's scaling factor).

Randomness matches ComfyUI on a CPU: the initial noise is one ``randn`` of the latent's
shape from a CPU generator seeded with ``seed``; ancestral samplers draw from a generator
on the model's device seeded with ``seed``; SDE samplers take the increments of one
Brownian path, torchsde's BrownianTree with entropy ``seed`` (``solvers.Noise``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from nodes.backends.sdxl import added_conditions
from nodes.backends.sigmas import ModelSigmas, schedule
from nodes.backends.solvers import SOLVERS, Denoiser, Noise, Sampler, Steps, ancestral_sigmas

# The samplers implemented, in ComfyUI's order (the first is its default); the newer
# solvers are in nodes.backends.solvers. ComfyUI's other names are refused at validation
# with this list: the *_cfg_pp ones (CFG++ needs the unguided x0 beside the guided one,
# which the denoiser does not return), and heunpp2, dpm_fast, dpm_adaptive, ipndm_v,
# res_multistep_ancestral, gradient_estimation, er_sde, seeds_2/3 and sa_solver(_pece),
# which are not written yet.
SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms",
            "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_sde",
            "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde",
            "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "deis", "res_multistep", "ddim",
            "uni_pc", "uni_pc_bh2")


@dataclass
class Conditioning:
    """One CONDITIONING entry as the sampler uses it: the token embeddings and its dict."""

    embeds: Any  # B×T×D
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    """Everything one KSampler call asks for (ComfyUI's KSampler/KSamplerAdvanced inputs)."""

    latent: dict[str, Any]
    positive: list[Conditioning]
    negative: list[Conditioning]
    seed: int
    steps: int
    cfg: float
    sampler: str = "euler"
    scheduler: str = "simple"
    denoise: float = 1.0
    add_noise: bool = True
    start_at_step: int = 0
    end_at_step: int = 10000
    leftover_noise: bool = False
    min_cfg: float | None = None  # VideoLinearCFGGuidance


@dataclass
class Model:
    """What the sampler needs of a pipeline: its UNet, noise levels and latent scaling."""

    unet: Any
    sigmas: ModelSigmas
    scale: float
    shift: float = 0.0
    device: str = "cpu"
    dtype: Any = None
    # A model family with its own call (SVD's EDM UNet, nodes.backends.svd): the x0 of one
    # entry, (x, σ, entry) -> x0 in model space. None: the SD UNet call of ``_x0``.
    predict: Callable[[Any, Any, Conditioning], Any] | None = None
    # ControlNets (nodes.backends.controlnet.ControlNets.residuals): the UNet's residual
    # arguments for the entries' controls, {} when none is active.
    control: Callable[..., dict[str, Any]] | None = None


def sigmas_for(model: Model, job: Job) -> list[float]:
    """The σ this job walks, KSamplerAdvanced's start/end cuts applied."""
    sigmas = schedule(model.sigmas, job.scheduler, job.steps, job.sampler, job.denoise)
    if job.end_at_step < len(sigmas) - 1:
        sigmas = sigmas[:job.end_at_step + 1]
        if not job.leftover_noise:
            sigmas[-1] = 0.0
    if job.start_at_step > 0:
        if job.start_at_step >= len(sigmas) - 1:
            return []
        sigmas = sigmas[job.start_at_step:]
    return sigmas


def initial_noise(samples: Any, seed: int, batch_index: list[int] | None) -> Any:
    """ComfyUI's noise: one CPU randn of the latent's shape seeded with ``seed``; with a
    ``batch_index``, single draws up to its largest entry and those picked."""
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed) % 2**64)
    if not batch_index:
        return torch.randn(samples.shape, generator=generator, dtype=torch.float32)
    shape = (1, *samples.shape[1:])
    draws = [torch.randn(shape, generator=generator, dtype=torch.float32)
             for _ in range(max(batch_index) + 1)]
    return torch.cat([draws[i] for i in batch_index])


def sample(model: Model, job: Job) -> Generator[tuple[int, int, Any], None, Any]:
    """Run the job, yielding ``(step, total, x0)`` after each step; returns the new raw
    ``samples``. A consumer that stops iterating stops the run between steps."""
    import torch

    raw = job.latent["samples"].float()
    sigmas = sigmas_for(model, job)
    if len(sigmas) < 2:  # denoise 0 or a start past the end: nothing to do
        return raw.clone()
        yield  # a generator all the same
    latent = (raw - model.shift) * model.scale if bool(raw.any()) else raw.clone()
    noise = initial_noise(raw, job.seed, job.latent.get("batch_index")) if job.add_noise \
        else torch.zeros_like(raw)
    sigma_list = torch.tensor(sigmas, dtype=torch.float32)
    first = float(sigma_list[0])
    max_denoise = math.isclose(model.sigmas.sigma_max, first, rel_tol=1e-5) \
        or first > model.sigmas.sigma_max
    x = latent + noise * (math.sqrt(1.0 + first ** 2) if max_denoise else first)
    denoiser = _denoiser(model, job, latent, noise)
    total = len(sigmas) - 1
    # The *_gpu samplers keep their Brownian tree on the model's device (other numbers
    # than the CPU's tree on a GPU; the same on a CPU).
    tree_device = model.device if job.sampler.endswith("_gpu") else "cpu"
    randomness = Noise(job.seed, model.device, sigma_list, tree_device)
    steps = _SAMPLER_FUNCTIONS[job.sampler](denoiser, x, sigma_list, randomness)
    while True:
        try:
            step, x0 = next(steps)
        except StopIteration as finished:
            return finished.value / model.scale + model.shift
        yield step + 1, total, x0


# -- the denoiser -----------------------------------------------------------------------

def _denoiser(model: Model, job: Job, latent: Any, noise: Any) -> Denoiser:
    """D(x, σ): CFG over each conditioning entry, the noise mask kept in the loop."""
    import torch

    batch = latent.shape[0]
    mask = _latent_mask(job.latent.get("noise_mask"), latent)
    skip_negative = math.isclose(job.cfg, 1.0) and job.min_cfg is None

    def predict(x: Any, sigma: Any, entries: list[Conditioning]) -> Any:
        # Several entries (ConditioningCombine): each runs alone; x0s are averaged.
        total = None
        for entry in entries:
            (x0,) = _x0(model, x, sigma, [entry], batch)
            total = x0 if total is None else total + x0
        return total / len(entries)

    # One prompt on each side (the usual case): both go through the UNet as one batch,
    # as ComfyUI and diffusers do; the same answer, about one call's cost less per step.
    paired = (model.predict is None and len(job.positive) == 1 and len(job.negative) == 1
              and job.positive[0].embeds.shape[1:] == job.negative[0].embeds.shape[1:])

    def denoise(x: Any, sigma: Any) -> Any:
        if mask is not None:
            x = mask * x + (1 - mask) * (latent + sigma * noise)
        if skip_negative:
            positive = predict(x, sigma, job.positive)
        elif paired:
            positive, negative = _x0(model, x, sigma, [job.positive[0], job.negative[0]],
                                     batch)
        else:
            positive = predict(x, sigma, job.positive)
            negative = predict(x, sigma, job.negative)
        if skip_negative:
            x0 = positive
        else:
            scale: Any = job.cfg
            if job.min_cfg is not None:  # VideoLinearCFGGuidance: per-frame cfg ramp
                scale = torch.linspace(job.min_cfg, job.cfg, batch).reshape(batch, 1, 1, 1)
            x0 = negative + scale * (positive - negative)
        if mask is not None:
            x0 = mask * x0 + (1 - mask) * latent
        return x0

    return denoise


def _x0(model: Model, x: Any, sigma: Any, entries: list[Conditioning],
        batch: int) -> list[Any]:
    """The UNet's clean-latent prediction at σ (ε or v prediction), in model space, for
    each entry; the entries (whose embeddings share a shape) run as one batch."""
    import torch

    if model.predict is not None:
        return [model.predict(x, sigma, entry) for entry in entries]
    count = len(entries)
    embeds = torch.cat([_batched(entry.embeds, batch) for entry in entries])
    sigma_b = sigma.reshape(1).repeat(batch).reshape(batch, 1, 1, 1)
    c_in = 1.0 / (sigma_b ** 2 + 1.0) ** 0.5
    timestep = model.sigmas.timestep(sigma.reshape(1)).float().repeat(batch * count)
    model_in = (x * c_in).repeat(count, 1, 1, 1)
    if model.unet.config.in_channels == 9:  # an inpainting UNet reads mask and image too
        model_in = torch.cat([model_in, torch.cat([
            torch.cat(_inpaint_concat(model, entry, x), dim=1) for entry in entries])], dim=1)
    dtype = model.dtype or torch.float32
    added: dict[str, Any] = {}  # nothing for SD 1.x/2.x: their UNet call stays as it was
    if getattr(model.unet.config, "addition_embed_type", None) == "text_time":  # SDXL
        added["added_cond_kwargs"] = added_conditions(entries, x, batch, model.device, dtype)
    if model.control is not None:  # the ControlNets read the input without inpaint channels
        added.update(model.control(model, entries, model_in[:, :x.shape[1]], timestep,
                                   embeds, sigma, added))
    with torch.no_grad():
        out = model.unet(model_in.to(model.device, dtype), timestep.to(model.device),
                         encoder_hidden_states=embeds.to(model.device, dtype),
                         **added).sample
    predictions = []
    for part in out.float().cpu().chunk(count):
        if model.sigmas.prediction == "v_prediction":
            predictions.append(x / (sigma_b ** 2 + 1.0)
                               - part * sigma_b / (sigma_b ** 2 + 1.0) ** 0.5)
        else:
            predictions.append(x - part * sigma_b)
    return predictions


def _inpaint_concat(model: Model, entry: Conditioning, x: Any) -> list[Any]:
    """[mask, masked-image latent] for a 9-channel UNet, from InpaintModelConditioning's
    ``concat_mask``/``concat_latent_image`` (missing ones: no mask, a blank image)."""
    import torch

    size = x.shape[-2:]
    concat = entry.extra.get("concat_latent_image")
    if concat is None:
        image = torch.zeros_like(x)
    else:
        image = (concat.float() - model.shift) * model.scale
        if image.shape[-2:] != size:
            image = torch.nn.functional.interpolate(image, size=size, mode="bilinear")
    mask = entry.extra.get("concat_mask")
    if mask is None:
        mask = torch.zeros((x.shape[0], 1, *size))
    else:
        mask = mask.float().reshape(-1, 1, *mask.shape[-2:])
        mask = torch.nn.functional.interpolate(mask, size=size, mode="bilinear").round()
    return [_batched(mask, x.shape[0]), _batched(image, x.shape[0])]


def _batched(tensor: Any, batch: int) -> Any:
    """The tensor's first axis tiled (or cut) to ``batch``."""
    if tensor.shape[0] == batch:
        return tensor
    tiles = (math.ceil(batch / tensor.shape[0]),) + (1,) * (tensor.ndim - 1)
    return tensor.repeat(*tiles)[:batch]


def _latent_mask(noise_mask: Any, latent: Any) -> Any:
    """The LATENT's noise_mask at latent size (bilinear, not rounded), over all channels."""
    import torch

    if noise_mask is None:
        return None
    mask = noise_mask.float().reshape(-1, 1, *noise_mask.shape[-2:])
    mask = torch.nn.functional.interpolate(mask, size=latent.shape[-2:], mode="bilinear")
    return _batched(mask.repeat(1, latent.shape[1], 1, 1), latent.shape[0])


# -- the samplers (k-diffusion's algorithms, as ComfyUI ships them) ------------------------
# Each yields (step index, x0) after each step and returns the final x (solvers.Steps).

def _euler(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        x = x + (x - x0) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        yield i, x0
    return x


def _euler_ancestral(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        down, up = ancestral_sigmas(float(sigmas[i]), float(sigmas[i + 1]))
        x = x + (x - x0) / sigmas[i] * (down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise.step(x) * up
        yield i, x0
    return x


def _heun(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        d = (x - x0) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:  # the last step is plain Euler
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = (x2 - denoise(x2, sigmas[i + 1])) / sigmas[i + 1]
            x = x + (d + d2) / 2 * dt
        yield i, x0
    return x


def _dpm_2(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise,
           ancestral: bool = False) -> Steps:
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        d = (x - x0) / sigmas[i]
        target, up = sigmas[i + 1], 0.0
        if ancestral:
            down, up = ancestral_sigmas(float(sigmas[i]), float(sigmas[i + 1]))
            target = sigmas.new_tensor(down)
        if target == 0:
            x = x + d * (target - sigmas[i])
        else:
            mid = sigmas[i].log().lerp(target.log(), 0.5).exp()
            x2 = x + d * (mid - sigmas[i])
            d2 = (x2 - denoise(x2, mid)) / mid
            x = x + d2 * (target - sigmas[i])
        if ancestral and sigmas[i + 1] > 0:
            x = x + noise.step(x) * up
        yield i, x0
    return x


def _dpmpp_2m(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    previous = None
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if previous is None or sigmas[i + 1] == 0:  # first order at both ends
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * x0
        else:
            h_last = t - (-sigmas[i - 1].log())
            r = h_last / h
            blended = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * blended
        previous = x0
        yield i, x0
    return x


def _ddpm(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    """DDPM's ancestral step in σ space (k-diffusion's ``sample_ddpm``)."""
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        alpha_cumprod = 1 / (sigma ** 2 + 1)
        alpha_cumprod_prev = 1 / (sigma_next ** 2 + 1)
        alpha = alpha_cumprod / alpha_cumprod_prev
        eps = (x - x0) / sigma
        mu = (1.0 / alpha).sqrt() * (x * (1 / (sigma ** 2 + 1)).sqrt()
                                     - (1 - alpha) * eps / (1 - alpha_cumprod).sqrt())
        if sigma_next > 0:
            mu = mu + ((1 - alpha) * (1.0 - alpha_cumprod_prev)
                       / (1.0 - alpha_cumprod)).sqrt() * noise.step(x)
        x = mu * (sigma_next ** 2 + 1).sqrt()
        yield i, x0
    return x


def _lcm(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        x = x0
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise.step(x)
        yield i, x0
    return x


_SAMPLER_FUNCTIONS: dict[str, Sampler] = {
    "euler": _euler, "euler_ancestral": _euler_ancestral, "heun": _heun,
    "dpm_2": _dpm_2,
    "dpm_2_ancestral": lambda d, x, s, n: _dpm_2(d, x, s, n, ancestral=True),
    "dpmpp_2m": _dpmpp_2m, "ddpm": _ddpm, "lcm": _lcm,
    "ddim": _euler,  # ComfyUI's ddim is its Euler sampler
    **SOLVERS,
}

