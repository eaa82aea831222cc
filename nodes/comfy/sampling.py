"""ComfyUI's KSampler nodes: the sampling runs on the checkpoint's host, step by step."""

from __future__ import annotations

from typing import Any

from engine.sdk import Input, Node, NodeContext, NodeOutputs, Output, node
from nodes.backends.ksampler import SAMPLERS
from nodes.backends.sigmas import SCHEDULERS
from nodes.comfy.conditioning import Conditioning, Latent
from nodes.comfy.loader import ModelPart, part
from nodes.comfy.stream import host, patches, streamed

SEED_MAX = 0xFFFFFFFFFFFFFFFF


def run_sampler(ctx: NodeContext, model: Any, latent_image: dict[str, Any],
                positive: Any, negative: Any, **settings: Any) -> dict[str, Any]:
    """A copy of the LATENT (noise_mask and batch_index kept) with the sampled latents."""
    unet = part(model, "unet", "model")
    if unet.min_cfg is not None:
        settings["min_cfg"] = unet.min_cfg
    samples = streamed(ctx, host(ctx, unet), "ksample", "samples", latent=latent_image,
                       positive=positive, negative=negative, preview=True,
                       **patches(unet), **settings)
    return {**latent_image, "samples": samples}


@node("KSampler", category="sampling", display_name="KSampler")
class KSampler(Node):
    """Uses the provided model, positive and negative conditioning to denoise the latent
    image."""

    model: ModelPart = Input(description="The model used for denoising the input latent.")
    seed: int = Input(0, min=0, max=SEED_MAX, description="The random seed used for "
                      "creating the noise.")
    steps: int = Input(20, min=1, max=10000, description="The number of steps used in the "
                       "denoising process.")
    cfg: float = Input(8.0, min=0.0, max=100.0, step=0.1, description="The Classifier-Free "
                       "Guidance scale balances creativity and adherence to the prompt.")
    sampler_name: str = Input("euler", choices=list(SAMPLERS), description="The algorithm "
                              "used when sampling.")
    scheduler: str = Input("simple", choices=list(SCHEDULERS), description="The scheduler "
                           "controls how noise is gradually removed to form the image.")
    positive: Conditioning = Input(description="The conditioning describing the attributes "
                                   "you want to include in the image.")
    negative: Conditioning = Input(description="The conditioning describing the attributes "
                                   "you want to exclude from the image.")
    latent_image: Latent = Input(description="The latent image to denoise.")
    denoise: float = Input(1.0, min=0.0, max=1.0, step=0.01, description="The amount of "
                           "denoising applied; lower values keep the initial image's "
                           "structure.")

    class Outputs(NodeOutputs):
        LATENT: Latent = Output(description="The denoised latent.")

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(LATENT=run_sampler(
            ctx, self.model, self.latent_image, self.positive, self.negative,
            seed=self.seed, steps=self.steps, cfg=self.cfg, sampler=self.sampler_name,
            scheduler=self.scheduler, denoise=self.denoise))


@node("KSamplerAdvanced", category="sampling", display_name="KSampler (Advanced)")
class KSamplerAdvanced(Node):
    """A KSampler that runs part of the schedule: from ``start_at_step`` to
    ``end_at_step``, with or without new noise, optionally leaving the rest of the noise in."""

    model: ModelPart = Input()
    add_noise: str = Input("enable", choices=["enable", "disable"])
    noise_seed: int = Input(0, min=0, max=SEED_MAX)
    steps: int = Input(20, min=1, max=10000)
    cfg: float = Input(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Input("euler", choices=list(SAMPLERS))
    scheduler: str = Input("simple", choices=list(SCHEDULERS))
    positive: Conditioning = Input()
    negative: Conditioning = Input()
    latent_image: Latent = Input()
    start_at_step: int = Input(0, min=0, max=10000)
    end_at_step: int = Input(10000, min=0, max=10000)
    return_with_leftover_noise: str = Input("disable", choices=["disable", "enable"])

    class Outputs(NodeOutputs):
        LATENT: Latent = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(LATENT=run_sampler(
            ctx, self.model, self.latent_image, self.positive, self.negative,
            seed=self.noise_seed, steps=self.steps, cfg=self.cfg, sampler=self.sampler_name,
            scheduler=self.scheduler, add_noise=self.add_noise == "enable",
            start_at_step=self.start_at_step, end_at_step=self.end_at_step,
            leftover_noise=self.return_with_leftover_noise == "enable"))
