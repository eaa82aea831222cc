"""A diffusion pipeline's parts as ComfyUI's core nodes use them, called on its host.

CLIPTextEncode, KSampler, VAEDecode and VAEEncode hold only a handle naming the model;
the work runs here, beside the resident weights. What crosses the wire is small: token
embeddings, latents and pictures as tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nodes.backends.controlnet import ControlNets, uncond_controls
from nodes.backends.ksampler import SAMPLERS, Conditioning, Job, Model, sample
from nodes.backends.lora import LoraError, Patcher
from nodes.backends.prompt import encode, encode_sdxl
from nodes.backends.sampler import latent_preview
from nodes.backends.sigmas import SCHEDULERS, ModelSigmas
from nodes.backends.vae import decode_latents, encode_pixels

# LoRA patches as the nodes pass them: (file, strength) pairs, applied in order.
Loras = Sequence[Sequence[Any]]


@dataclass
class Parts:
    """Some of a Stable Diffusion pipeline's components, for hosts that hold only a few
    (a lone UNet from UNETLoader, text encoders from CLIPLoader): what PartCalls reads
    of a pipeline, the missing ones None."""

    unet: Any = None
    scheduler: Any = None
    vae: Any = None
    tokenizer: Any = None
    text_encoder: Any = None
    tokenizer_2: Any = None
    text_encoder_2: Any = None


class PartCalls:
    """Mixed into a backend holding ``base``: a Stable Diffusion pipeline, or ``Parts``."""

    base: Any
    device: str

    def _sdxl(self) -> bool:
        return getattr(self.base, "text_encoder_2", None) is not None

    def _patched(self, part: str, loras: Loras = ()) -> None:
        """Make the UNet (``part`` "unet") or the text encoders ("clip") carry exactly
        these LoRAs: every call that uses them says which, since graphs with other LoRAs
        (or none) share this host. Calls run one at a time on the host's worker thread."""
        patchers: dict[str, Patcher] = self.__dict__.setdefault("_patchers", {})
        if part not in patchers:
            names = ("unet",) if part == "unet" else ("text_encoder", "text_encoder_2")
            roots = {name: getattr(self.base, name, None) for name in names}
            roots = {name: model for name, model in roots.items() if model is not None}
            if not roots:
                if loras:
                    raise LoraError(f"this model has no {part} to apply a LoRA to")
                return
            patchers[part] = Patcher(roots)
        patchers[part].use(loras)

    def encode_text(self, text: str, loras: Loras = ()) -> list[list[Any]]:
        """CLIPTextEncode: ``[[embeddings, {"pooled_output": pooled}]]``. On SDXL both CLIPs
        read the text and the dict carries no sizes: the sampler takes them from the
        latent, as ComfyUI's does."""
        self._patched("clip", loras)
        if self._sdxl():
            embeds, pooled = encode_sdxl(self.base, text, text, self.device)
        else:
            embeds, pooled = encode(self.base.tokenizer, self.base.text_encoder, text,
                                    self.device)
        return [[embeds, {"pooled_output": pooled}]]

    def encode_text_sdxl(self, text_g: str, text_l: str,
                         loras: Loras = ()) -> list[list[Any]]:
        """CLIPTextEncodeSDXL's encoding: ``text_g`` to CLIP-G, ``text_l`` to CLIP-L (the
        node adds the six sizes to the dict)."""
        self._patched("clip", loras)
        if not self._sdxl():
            raise ValueError("CLIPTextEncodeSDXL needs an SDXL checkpoint's CLIP (two text "
                             "encoders, L and G); this checkpoint has one")
        embeds, pooled = encode_sdxl(self.base, text_g, text_l, self.device)
        return [[embeds, {"pooled_output": pooled}]]

    def vae_decode(self, samples: Any) -> Any:
        """VAEDecode: raw latents to an IMAGE (B×H×W×3 in 0..1)."""
        return decode_latents(self.base.vae, samples, self.device)

    def vae_encode(self, pixels: Any) -> Any:
        """VAEEncode: an IMAGE to raw latents (see ``vae.encode_pixels``)."""
        return encode_pixels(self.base.vae, pixels, self.device)

    def latent_format(self) -> tuple[float, float]:
        """(scale, shift) between raw VAE latents and the UNet's: the VAE's config."""
        vae = self.base.vae.config
        return (float(getattr(vae, "scaling_factor", 0.18215) or 0.18215),
                float(getattr(vae, "shift_factor", None) or 0.0))

    def sampling_model(self) -> Model:
        config = dict(self.base.scheduler.config)
        scale, shift = self.latent_format()
        return Model(unet=self.base.unet, sigmas=ModelSigmas.from_config(config),
                     scale=scale, shift=shift, device=self.device, dtype=self.base.unet.dtype,
                     control=ControlNets.of(self).residuals)

    def ksample(self, latent: dict[str, Any], positive: list[list[Any]],
                negative: list[list[Any]], preview: bool = False, loras: Loras = (),
                **settings: Any) -> Iterator[dict[str, Any]]:
        """KSampler / KSamplerAdvanced: streams ``{"step", "total"[, "preview"]}`` after
        each step, then ``{"samples"}`` (raw latents, the input's shape)."""
        self._patched("unet", loras)
        yield from sampled(self.sampling_model(), latent, positive, negative, preview,
                           **settings)

    def text_to_image_as_comfyui(self, calls: list[dict[str, Any]], seeds: list[list[int]],
                                 emit: Callable[[int | None, Any], bool],
                                 abandoned: type[Exception]) -> list[dict[str, Any]]:
        """image.TextToImage with one of ComfyUI's samplers: exactly the computation of
        CLIPTextEncode ×2 → EmptyLatentImage → KSampler → VAEDecode → SaveImage, one
        picture at a time (image i seeded seed + i), so the two give the same pixels."""
        import torch

        from nodes.comfy.value import pictures_of

        self._patched("unet")
        self._patched("clip")
        factor = int(getattr(self.base, "vae_scale_factor", 8))
        channels = int(self.base.vae.config.latent_channels)
        results = []
        for index, call in enumerate(calls):
            positive = self.encode_text(call["prompt"])
            negative = self.encode_text(call.get("negative_prompt") or "")
            shape = (1, channels, call["height"] // factor, call["width"] // factor)
            images = []
            for number, seed in enumerate(seeds[index]):
                samples = None
                for update in self.ksample({"samples": torch.zeros(shape)}, positive, negative,
                                           preview=bool(call.get("preview")), seed=seed,
                                           steps=call["steps"], cfg=call["cfg"],
                                           sampler=call["sampler"],
                                           scheduler=call["scheduler"]):
                    if "samples" in update:
                        samples = update["samples"]
                        continue
                    total = update["total"]
                    shown = {**update, "step": number * total + update["step"],
                             "total": len(seeds[index]) * total}
                    if not emit(index, shown):
                        raise abandoned(f"the request was cancelled at step {update['step']}")
                images.extend(pictures_of(self.vae_decode(samples)))
            results.append({"images": images, "seeds": seeds[index]})
        return results


def sampled(model: Model, latent: dict[str, Any], positive: list[list[Any]],
            negative: list[list[Any]], preview: bool = False,
            **settings: Any) -> Iterator[dict[str, Any]]:
    """One KSampler call on a host's model: ``{"step", "total"[, "preview"]}`` after each
    step (the preview of the first picture or frame), then ``{"samples"}``."""
    if settings.get("sampler", "euler") not in SAMPLERS:
        raise ValueError(f"sampler {settings.get('sampler')!r} is not supported; one of "
                         f"{', '.join(SAMPLERS)}")
    if settings.get("scheduler", "simple") not in SCHEDULERS:
        raise ValueError(f"scheduler {settings.get('scheduler')!r} is not supported; "
                         f"one of {', '.join(SCHEDULERS)}")
    job = Job(latent=latent, positive=_entries(positive),
              negative=_entries(uncond_controls(positive, negative)), **settings)
    steps = sample(model, job)
    while True:
        try:
            step, total, x0 = next(steps)
        except StopIteration as finished:
            yield {"samples": finished.value}
            return
        update: dict[str, Any] = {"step": step, "total": total}
        if preview:
            shown = latent_preview(x0[:1])
            if shown:
                update["preview"] = shown
        yield update


def _entries(conditioning: list[list[Any]]) -> list[Conditioning]:
    if not conditioning:
        raise ValueError("a KSampler needs at least one conditioning entry on each side")
    return [Conditioning(embeds=embeds, extra=dict(extra or {}))
            for embeds, extra in conditioning]
