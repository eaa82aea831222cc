"""ComfyUI's noise schedules: which noise levels (σ) a KSampler steps through.

A discrete diffusion model was trained on 1000 noise levels, σ_t = √((1−ᾱ_t)/ᾱ_t) from
its beta schedule. A *scheduler* picks ``steps`` of them (plus a final 0); the *sampler*
then walks x from the first to the last. The rules here are ComfyUI's, whose names users
know, and the ten-step values of its SD1 table are checked in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The first entry is ComfyUI's default.
SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
              "normal", "linear_quadratic", "kl_optimal")
# These samplers want one more σ and drop the second to last (ComfyUI's DISCARD_PENULTIMATE).
DISCARD_PENULTIMATE = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}


@dataclass(frozen=True)
class ModelSigmas:
    """The noise levels a discrete (ε or v) model was trained on, lowest first."""

    sigmas: Any  # float32 tensor of 1000 σ, ascending
    prediction: str = "epsilon"  # or "v_prediction"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelSigmas:
        """From a diffusers scheduler config: its beta schedule and prediction type."""
        import torch

        count = int(config.get("num_train_timesteps", 1000))
        start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
        kind = config.get("beta_schedule", "scaled_linear")
        if kind == "scaled_linear":
            betas = torch.linspace(start ** 0.5, end ** 0.5, count, dtype=torch.float64) ** 2
        elif kind == "linear":
            betas = torch.linspace(start, end, count, dtype=torch.float64)
        else:
            raise ValueError(f"beta schedule {kind!r} is not supported (scaled_linear, linear)")
        alphas = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - alphas) / alphas) ** 0.5
        return cls(sigmas.float(), str(config.get("prediction_type", "epsilon")))

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: Any) -> Any:
        """The training step nearest ``sigma`` in log σ (ComfyUI rounds; diffusers
        interpolates, which is why their pictures differ slightly)."""
        log_sigmas = self.sigmas.log()
        distance = sigma.log().reshape(-1, 1) - log_sigmas.reshape(1, -1)
        return distance.abs().argmin(dim=1).reshape(sigma.shape)

    def sigma(self, timestep: Any) -> Any:
        """σ at a fractional training step, interpolated in log σ."""
        import torch

        t = torch.as_tensor(timestep, dtype=torch.float32).clamp(0, len(self.sigmas) - 1)
        low = t.floor().long()
        high = t.ceil().long()
        weight = t.frac()
        log_sigmas = self.sigmas.log()
        return ((1 - weight) * log_sigmas[low] + weight * log_sigmas[high]).exp()


def _normal(model: ModelSigmas, steps: int, sgm: bool = False) -> Any:
    import torch

    start = float(model.timestep(torch.tensor(model.sigma_max)))
    end = float(model.timestep(torch.tensor(model.sigma_min)))
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    elif math.isclose(float(model.sigma(torch.tensor(end))), 0, abs_tol=1e-5):
        steps += 1
        append_zero = False
        timesteps = torch.linspace(start, end, steps)
    else:
        timesteps = torch.linspace(start, end, steps)
    sigmas = [float(model.sigma(t)) for t in timesteps]
    return sigmas + [0.0] if append_zero else sigmas


def _simple(model: ModelSigmas, steps: int) -> list[float]:
    stride = len(model.sigmas) / steps
    return [float(model.sigmas[-(1 + int(x * stride))]) for x in range(steps)] + [0.0]


def _karras(model: ModelSigmas, steps: int, rho: float = 7.0) -> list[float]:
    low, high = model.sigma_min ** (1 / rho), model.sigma_max ** (1 / rho)
    if steps == 1:
        return [model.sigma_max, 0.0]
    return [(high + i / (steps - 1) * (low - high)) ** rho for i in range(steps)] + [0.0]


def _exponential(model: ModelSigmas, steps: int) -> list[float]:
    low, high = math.log(model.sigma_min), math.log(model.sigma_max)
    if steps == 1:
        return [model.sigma_max, 0.0]
    return [math.exp(high + i / (steps - 1) * (low - high)) for i in range(steps)] + [0.0]


def _ddim_uniform(model: ModelSigmas, steps: int) -> list[float]:
    count = len(model.sigmas)
    stride = max(count // steps, 1)
    picked = [float(model.sigmas[x]) for x in range(1, count, stride)]
    return [0.0, *picked][::-1] if picked else [0.0]


def _beta(model: ModelSigmas, steps: int, alpha: float = 0.6, beta: float = 0.6) -> list[float]:
    from scipy import stats

    count = len(model.sigmas) - 1
    sigmas: list[float] = []
    last = None
    for k in range(steps):
        index = int(round(float(stats.beta.ppf(1 - k / steps, alpha, beta)) * count))
        if index != last:  # consecutive duplicates collapse
            sigmas.append(float(model.sigmas[index]))
            last = index
    return sigmas + [0.0]


def _linear_quadratic(model: ModelSigmas, steps: int, threshold: float = 0.025) -> list[float]:
    if steps == 1:
        return [model.sigma_max, 0.0]
    linear_steps = steps // 2
    linear = [i * threshold / linear_steps for i in range(linear_steps)]
    diff = linear_steps - threshold * steps
    quadratic_steps = steps - linear_steps
    coef = diff / (linear_steps * quadratic_steps ** 2)
    linear_coef = threshold / linear_steps - 2 * diff / (quadratic_steps ** 2)
    const = coef * linear_steps ** 2
    quadratic = [coef * i ** 2 + linear_coef * i + const
                 for i in range(linear_steps, steps)]
    schedule = [1.0 - x for x in [*linear, *quadratic, 1.0]]
    return [s * model.sigma_max for s in schedule]


def _kl_optimal(model: ModelSigmas, steps: int) -> list[float]:
    high, low = math.atan(model.sigma_max), math.atan(model.sigma_min)
    if steps == 1:
        return [model.sigma_max, 0.0]
    return [math.tan((1 - i / (steps - 1)) * high + (i / (steps - 1)) * low)
            for i in range(steps)] + [0.0]


_RULES: dict[str, Callable[[ModelSigmas, int], list[float]]] = {
    "simple": _simple, "sgm_uniform": lambda m, n: _normal(m, n, sgm=True),
    "karras": _karras, "exponential": _exponential, "ddim_uniform": _ddim_uniform,
    "beta": _beta, "normal": _normal, "linear_quadratic": _linear_quadratic,
    "kl_optimal": _kl_optimal,
}


def schedule(model: ModelSigmas, scheduler: str, steps: int, sampler: str = "euler",
             denoise: float = 1.0) -> list[float]:
    """The σ a KSampler walks: ``steps`` of them and a final 0 (fewer for tiny denoise).

    ``denoise`` < 1 starts part-way as ComfyUI does: it computes the schedule for
    steps/denoise steps and keeps its last steps+1 values, so it still runs ``steps``.
    """
    if scheduler not in _RULES:
        raise ValueError(f"unknown scheduler {scheduler!r}; one of {', '.join(SCHEDULERS)}")
    if steps < 1 or denoise <= 0:
        return []
    total = steps if denoise >= 0.9999 else int(steps / denoise)
    discard = sampler in DISCARD_PENULTIMATE
    sigmas = _RULES[scheduler](model, total + 1 if discard else total)
    if discard:
        sigmas = sigmas[:-2] + sigmas[-1:]
    # The full schedule is kept as it is (ddim_uniform may give more than asked for).
    return sigmas if total == steps else sigmas[-(steps + 1):]
