"""More of ComfyUI's samplers, written from their papers: DPM-Solver++ (2S ancestral, SDE,
2M/3M SDE), linear multistep (lms, iPNDM, DEIS), UniPC and RES.

Every sampler walks x down the σ schedule in k-diffusion's form (x = x0 + σ·ε at noise
level σ), asks the denoiser D(x, σ) for the clean latent, yields ``(step, x0)`` after each
step and returns the final x. The probability-flow ODE they solve is dx/dσ = (x − D)/σ.
The exponential integrators (DPM-Solver++, UniPC, RES) step in λ = −log σ, where the
linear part is solved exactly: with D held fixed, x(σ') = (σ'/σ)·x + (1 − σ'/σ)·D; their
higher orders add terms from how D changes along λ.

Randomness is ComfyUI's (``Noise``): per-step randn from a seeded generator, and for SDE
samplers the increments of one Brownian path from torchsde's BrownianTree.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

Denoiser = Callable[[Any, Any], Any]  # (x, σ as a 0-d tensor) -> x0 prediction
# A sampler yields (step index, x0) after each step and returns the final x.
Steps = Generator[tuple[int, Any], None, Any]


class Noise:
    """The randomness samplers draw while sampling, as ComfyUI draws it.

    ``step``: one randn of x's shape per call from a generator on the model's device seeded
    with ``seed`` (ancestral, ddpm and lcm samplers). ``brownian``: the increment of one
    Brownian path W between two noise levels, from torchsde's BrownianTree with entropy
    ``seed`` over [smallest σ > 0, largest σ] of the schedule (SDE samplers): one path, so
    the noise of a step does not depend on how the other steps were cut.
    """

    def __init__(self, seed: int, device: str, sigmas: Any, tree_device: str = "cpu") -> None:
        self._seed = int(seed)
        self._device = device
        self._tree_device = tree_device  # the model's device for the ``_gpu`` samplers
        positive = sigmas[sigmas > 0]
        self._span = (float(positive.min()), float(sigmas.max())) if len(positive) else None
        self._generator: Any = None
        self._tree: Any = None

    def step(self, x: Any) -> Any:
        """A standard normal draw of x's shape (on the CPU, where x lives)."""
        import torch

        if self._generator is None:
            self._generator = torch.Generator(self._device).manual_seed(self._seed % 2**64)
        return torch.randn(x.shape, generator=self._generator, device=self._device).float().cpu()

    def brownian(self, x: Any, sigma: Any, sigma_next: Any) -> Any:
        """(W(σ_next) − W(σ)) / √|σ_next − σ|, a standard normal per element of x's shape;
        σ and σ_next are 0-d tensors within the schedule's range."""
        if self._tree is None:
            self._tree = self._new_tree(x)
        start, end = float(sigma), float(sigma_next)
        # The tree answers W(b) − W(a) for a < b only.
        increment = self._tree(min(start, end), max(start, end)).float().cpu()
        if end < start:
            increment = -increment
        return increment / (sigma_next - sigma).abs().sqrt()

    def _new_tree(self, x: Any) -> Any:
        """Made at the first query, so a schedule with one step never needs one (torchsde
        refuses an empty interval)."""
        import torch
        import torchsde

        if self._span is None:
            raise ValueError("a Brownian path needs a schedule with a σ above 0")
        # torchsde rounds the tree's ends to its tolerance's digits, then warns that σ_max
        # lies past the rounded end and clamps it there: the same point once rounded.
        warnings.filterwarnings("ignore", message="Should have (ta|tb)", category=UserWarning,
                                module="torchsde")
        low, high = self._span
        start = torch.zeros(x.shape, dtype=torch.float32, device=self._tree_device)
        return torchsde.BrownianTree(low, start, high, entropy=self._seed)


Sampler = Callable[[Denoiser, Any, Any, Noise], Steps]


def ancestral_sigmas(sigma: float, sigma_next: float) -> tuple[float, float]:
    """σ_down, σ_up of an ancestral step with eta 1: a deterministic step to σ_down, then
    noise of std σ_up brings the level back to σ_next (σ_down² + σ_up² = σ_next²)."""
    if sigma_next == 0:
        return 0.0, 0.0
    up = min(sigma_next, (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
    return (sigma_next ** 2 - up ** 2) ** 0.5, up


def _first_order(x: Any, x0: Any, sigma: Any, target: Any) -> Any:
    """The exact step of the ODE to ``target`` with D held at x0 (DDIM, DPM-Solver++ 1)."""
    ratio = target / sigma
    return ratio * x + (1 - ratio) * x0


def _weighted(weights: Any, terms: list[Any]) -> Any:
    """Σ w·term (weights and terms paired in order)."""
    return sum(w * term for w, term in zip(weights, terms, strict=True))


def _log_midpoint(sigma: Any, target: Any) -> Any:
    """The σ half way between two σ in log σ (r = 1/2 of a DPM-Solver++ step)."""
    return sigma.log().lerp(target.log(), 0.5).exp()


# -- DPM-Solver++: single step with ancestral or Brownian noise ---------------------------

def _dpmpp_2s_ancestral(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    """DPM-Solver++(2S) to σ_down (a second model call half way in log σ), then σ_up of
    fresh noise (eta 1)."""
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        x0 = denoise(x, sigma)
        down, up = ancestral_sigmas(float(sigma), float(sigmas[i + 1]))
        if down == 0:  # the last step lands on x0
            x = x0
        else:
            target = sigmas.new_tensor(down)
            mid = _log_midpoint(sigma, target)
            x0_mid = denoise(_first_order(x, x0, sigma, mid), mid)
            x = _first_order(x, x0_mid, sigma, target)
            x = x + noise.step(x) * up
        yield i, x0
    return x


def _sde_substep(x: Any, x0: Any, sigma: Any, target: Any, noise: Noise) -> Any:
    """From σ toward ``target`` the ancestral way, the noise taken from the Brownian path:
    a first-order step to σ_down, then σ_up of the path's increment over [target, σ]."""
    down, up = ancestral_sigmas(float(sigma), float(target))
    return _first_order(x, x0, sigma, sigma.new_tensor(down)) \
        + noise.brownian(x, sigma, target) * up


def _dpmpp_sde(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    """DPM-Solver++ SDE with r = 1/2 (eta 1): an ancestral substep to the log-σ midpoint
    for a second model call, whose x0 then drives the full step (with r = 1/2 the blend
    (1 − 1/2r)·D + (1/2r)·D_mid is D_mid alone)."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, sigma)
        if sigma_next == 0:
            x = x0
        else:
            mid = _log_midpoint(sigma, sigma_next)
            x0_mid = denoise(_sde_substep(x, x0, sigma, mid, noise), mid)
            x = _sde_substep(x, x0_mid, sigma, sigma_next, noise)
        yield i, x0
    return x


# -- DPM-Solver++(2M/3M) SDE ---------------------------------------------------------------

def _sde_correction(x0: Any, earlier: list[tuple[Any, Any]], h: Any, solver: str) -> Any:
    """The multistep terms of DPM-Solver++(2M/3M) SDE (eta 1, so the exponent is 2h):
    ``earlier`` holds the last x0s, newest first, each with the log-σ step that followed
    it; differences of x0 divided by those steps estimate D's derivatives in λ."""
    span = 2 * h
    decay = (-span).exp()
    phi_2 = (decay - 1) / span + 1
    newer, h1 = earlier[0]
    slope = (x0 - newer) * (h / h1)
    if len(earlier) == 1:
        return 0.5 * (1 - decay) * slope if solver == "midpoint" else phi_2 * slope
    older, h2 = earlier[1]
    r0, r1 = h1 / h, h2 / h
    older_slope = (newer - older) / r1
    first = slope + (slope - older_slope) * r0 / (r0 + r1)
    second = (slope - older_slope) / (r0 + r1)
    phi_3 = phi_2 / span - 0.5
    return phi_2 * first - phi_3 * second


def _dpmpp_multistep_sde(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise, order: int,
                         solver: str = "heun") -> Steps:
    """DPM-Solver++(2M) SDE (order 2, midpoint or heun) or (3M) SDE (order 3), eta 1: the
    data-prediction SDE solved exactly for D held fixed, x ← e^{−2h}·x + (1 − e^{−2h})·D
    + σ'·√(1 − e^{−2h})·ξ with h = log(σ/σ'), plus multistep terms from earlier x0s."""
    earlier: list[tuple[Any, Any]] = []
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, sigma)
        if sigma_next == 0:
            x = x0
        else:
            h = sigma.log() - sigma_next.log()
            decay = (-2 * h).exp()
            step = decay * x + (1 - decay) * x0
            if earlier:
                step = step + _sde_correction(x0, earlier, h, solver)
            x = step + noise.brownian(x, sigma, sigma_next) * sigma_next * (1 - decay).sqrt()
            earlier = [(x0, h), *earlier][:order - 1]
        yield i, x0
    return x


# -- linear multistep on the ODE's derivative d = (x − D)/σ --------------------------------

def _lagrange_weights(levels: list[float], start: float, end: float,
                      warp: Callable[[float], float]) -> list[float]:
    """∫ ℓ_j(warp(σ)) dσ over [start, end] for each level j: ℓ_j is the Lagrange basis
    polynomial through the warped levels, so the weighted sum of the derivatives at those
    levels integrates their interpolating polynomial over the step."""
    from scipy import integrate

    nodes = [warp(level) for level in levels]

    def basis(j: int, sigma: float) -> float:
        u = warp(sigma)
        return math.prod((u - node) / (nodes[j] - node)
                         for k, node in enumerate(nodes) if k != j)

    return [integrate.quad(partial(basis, j), start, end)[0] for j in range(len(nodes))]


def _identity(sigma: float) -> float:
    return sigma


# DEIS's "tab" polynomials live in the time of a VP diffusion, EDM's linear-β schedule from
# σ = 0.002 at t = 1e-3 to σ = 80 at t = 1 (whatever the model's own σ are).
_VP_EPS, _VP_SIGMA_MIN, _VP_SIGMA_MAX = 1e-3, 0.002, 80.0
_VP_BETA_D = 2 * (math.log(_VP_SIGMA_MIN ** 2 + 1) / _VP_EPS
                  - math.log(_VP_SIGMA_MAX ** 2 + 1)) / (_VP_EPS - 1)
_VP_BETA_MIN = math.log(_VP_SIGMA_MAX ** 2 + 1) - 0.5 * _VP_BETA_D


def _vp_time(sigma: float) -> float:
    """t of σ: the inverse of σ(t)² = exp(β_d·t²/2 + β_min·t) − 1."""
    return (math.sqrt(_VP_BETA_MIN ** 2 + 2 * _VP_BETA_D * math.log1p(sigma ** 2))
            - _VP_BETA_MIN) / _VP_BETA_D


def _lagrange_multistep(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise, order: int,
                        warp: Callable[[float], float], euler_last: bool) -> Steps:
    """Adams–Bashforth on the schedule's own steps: x' = x + Σ_j w_j·d_j over the last
    ``order`` derivatives (fewer at the start), w from ``_lagrange_weights``. lms
    interpolates in σ (order 4); DEIS in VP time (order 3, an Euler step onto σ = 0)."""
    levels = [float(sigma) for sigma in sigmas]
    slopes: list[Any] = []  # newest first
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        slopes = [(x - x0) / sigmas[i], *slopes][:order]
        used = slopes[:1] if euler_last and levels[i + 1] <= 0 else slopes
        weights = _lagrange_weights(levels[i::-1][:len(used)], levels[i], levels[i + 1], warp)
        x = x + _weighted(weights, used)
        yield i, x0
    return x


# Adams–Bashforth's weights for equal steps, newest derivative first, orders 1 to 4.
_ADAMS_BASHFORTH = ((1.0,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12),
                    (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def _ipndm(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    """Improved PNDM: Adams–Bashforth of order up to 4 with the equal-step weights, the
    first steps of lower order for want of history (no Runge–Kutta warm-up)."""
    slopes: list[Any] = []  # newest first
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i])
        slopes = [(x - x0) / sigmas[i], *slopes][:len(_ADAMS_BASHFORTH)]
        weights = _ADAMS_BASHFORTH[len(slopes) - 1]
        x = x + (sigmas[i + 1] - sigmas[i]) * _weighted(weights, slopes)
        yield i, x0
    return x


# -- RES and UniPC: exponential integrators in λ = −log σ ----------------------------------

def _res_multistep(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise) -> Steps:
    """RES's second-order multistep: x' = e^{−h}·x + h·(b1·D + b2·D_prev), b2 = φ2(−h)/c2,
    b1 = φ1(−h) − b2, where c2 = (λ_prev − λ)/h places the previous x0 (behind the step,
    so c2 < 0). The first step is first order; a step onto σ = 0 gives the x0."""
    previous: tuple[Any, Any] | None = None  # (x0, its λ)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, sigma)
        lam = -sigma.log()
        if sigma_next == 0:
            x = x0
        elif previous is None:
            x = _first_order(x, x0, sigma, sigma_next)
        else:
            h = -sigma_next.log() - lam
            phi_1 = (-h).expm1() / -h
            phi_2 = (phi_1 - 1) / -h
            b2 = phi_2 / ((previous[1] - lam) / h)
            x = (-h).exp() * x + h * ((phi_1 - b2) * x0 + b2 * previous[0])
        previous = (x0, lam)
        yield i, x0
    return x


def _unipc_coefficients(rks: list[float], h: float,
                        variant: str) -> tuple[float, list[float], list[float]]:
    """UniPC's weights (x0 form) for a step of length h in λ whose earlier x0s lie at
    λ + r·h for r in ``rks`` (newest first): B(h) (bh1: −h; bh2: e^−h − 1) and the ρ of the
    predictor and of the corrector, which solve R·ρ = b with R's rows r^(k−1) (r = 1 for
    the new x0) and b_k = k!·φ_k(−h)/B(h)."""
    import torch

    hh = -h
    b_h = hh if variant == "bh1" else math.expm1(hh)
    order = len(rks) + 1
    phi = math.expm1(hh) / hh - 1  # φ_1; then φ_{k+1} = φ_k/hh − 1/(k+1)!
    factorial = 1
    rhs = []
    for k in range(1, order + 1):
        rhs.append(phi * factorial / b_h)
        factorial *= k + 1
        phi = phi / hh - 1 / factorial
    nodes = [*rks, 1.0]
    matrix = torch.tensor([[r ** (k - 1) for r in nodes] for k in range(1, order + 1)],
                          dtype=torch.float64)
    b = torch.tensor(rhs, dtype=torch.float64)
    # Where the system would be 1×1 UniPC's authors fix ρ at 1/2 instead.
    predictor = [] if order == 1 else [0.5] if order == 2 else \
        torch.linalg.solve(matrix[:-1, :-1], b[:-1]).tolist()
    corrector = [0.5] if order == 1 else torch.linalg.solve(matrix, b).tolist()
    return b_h, predictor, corrector


def _unipc_step(denoise: Denoiser, x: Any, history: list[tuple[Any, Any]], sigma_next: Any,
                variant: str, correct: bool) -> tuple[Any, Any]:
    """One UniPC step from the newest entry of ``history`` ((σ, x0) pairs, oldest first,
    as many as the step's order) to σ_next: the predictor UniP, then, with ``correct``,
    a model call at the prediction and the corrector UniC. Returns (x, that x0 or None)."""
    sigma, x0 = history[-1]
    lam = -math.log(float(sigma))
    h = -math.log(float(sigma_next)) - lam
    earlier = history[-2::-1]  # newest first
    rks = [(-math.log(float(s)) - lam) / h for s, _ in earlier]
    slopes = [(older - x0) / r for r, (_, older) in zip(rks, earlier, strict=True)]
    b_h, predictor, corrector = _unipc_coefficients(rks, h, variant)
    base = _first_order(x, x0, sigma, sigma_next)
    prediction = base - b_h * _weighted(predictor, slopes) if slopes else base
    if not correct:
        return prediction, None
    x0_next = denoise(prediction, sigma_next)
    return base - b_h * _weighted(corrector, [*slopes, x0_next - x0]), x0_next


def _uni_pc(denoise: Denoiser, x: Any, sigmas: Any, noise: Noise, variant: str) -> Steps:
    """UniPC in x0 form, multistep, of order min(3, steps − 1) with lower orders at the
    first and last steps; one model call per step (the corrector's call is the next
    step's x0, and the last step has none). ComfyUI replaces a final σ of 0 by 0.001
    (λ = −log σ must stay finite), so the result keeps that much noise. (ComfyUI runs it in
    the VP form x/√(1+σ²); the update is the same in this form, up to rounding.)"""
    sigmas = sigmas.clone()
    if sigmas[-1] == 0:
        sigmas[-1] = 0.001
    steps = len(sigmas) - 1
    order = max(1, min(3, steps - 1))  # ComfyUI's order is 0 at one step, which fails
    history = [(sigmas[0], denoise(x, sigmas[0]))]
    for i in range(steps):
        step_order = min(i + 1, order, steps - i)
        x, x0_next = _unipc_step(denoise, x, history[-step_order:], sigmas[i + 1], variant,
                                 correct=i + 1 < steps)
        yield i, history[-1][1]
        if x0_next is not None:
            history = [*history, (sigmas[i + 1], x0_next)][-order:]
    return x


SOLVERS: dict[str, Sampler] = {
    "lms": partial(_lagrange_multistep, order=4, warp=_identity, euler_last=False),
    "dpmpp_2s_ancestral": _dpmpp_2s_ancestral,
    "dpmpp_sde": _dpmpp_sde, "dpmpp_sde_gpu": _dpmpp_sde,
    "dpmpp_2m_sde": partial(_dpmpp_multistep_sde, order=2, solver="midpoint"),
    "dpmpp_2m_sde_gpu": partial(_dpmpp_multistep_sde, order=2, solver="midpoint"),
    "dpmpp_2m_sde_heun": partial(_dpmpp_multistep_sde, order=2, solver="heun"),
    "dpmpp_2m_sde_heun_gpu": partial(_dpmpp_multistep_sde, order=2, solver="heun"),
    "dpmpp_3m_sde": partial(_dpmpp_multistep_sde, order=3),
    "dpmpp_3m_sde_gpu": partial(_dpmpp_multistep_sde, order=3),
    "ipndm": _ipndm,
    "deis": partial(_lagrange_multistep, order=3, warp=_vp_time, euler_last=True),
    "res_multistep": _res_multistep,
    "uni_pc": partial(_uni_pc, variant="bh1"),
    "uni_pc_bh2": partial(_uni_pc, variant="bh2"),
}
