"""Stable Diffusion-family pipelines (SD 1.x/2.x, SDXL, and what else diffusers loads from
a local folder or a single file): text to image, image to image and inpainting.

The three tasks share one set of weights (``from_pipe``). Each task is ``grouped`` on the
model host. How a run draws its images is the manifest option ``image_passes``:

- ``per_image`` (the default on a CPU): every image is its own batch-of-one pipeline call,
  so a seed gives the same pixels whatever it was drawn beside, bit for bit. Calls never
  share a run: on a CPU a batch costs what its images cost one by one, so sharing would
  buy nothing but rounding differences.
- ``shared`` (the default on a GPU): concurrent calls with the same size and settings run
  as one batched pipeline call, each keeping its own prompt and seeds. Kernels picked by
  batch shape round differently, so an image matches its single-image twin within a few
  levels (mean under 1, max under 8 of 255), not bit for bit.

Everything runs on the host's worker thread; progress leaves through ``emit`` from the
pipeline's step callback.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from nodes.backends.device import placement
from nodes.backends.ksampler import SAMPLERS as KSAMPLERS
from nodes.backends.parts import PartCalls
from nodes.backends.quiet import quiet_loading
from nodes.backends.sampler import latent_preview, scheduler_for

Emit = Callable[[int | None, Any], bool]
MAX_GROUP = 8  # images in one batched pipeline call
PASSES = ("per_image", "shared")


class AbandonedError(RuntimeError):
    """A run stopped between steps because no caller wants its pictures any more."""


class DiffusersBackend(PartCalls):
    grouped = {"text_to_image": MAX_GROUP, "image_to_image": MAX_GROUP,
               "inpaint": MAX_GROUP}

    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        device, dtype = placement(device)
        with quiet_loading():
            base = _load(manifest, weights, dtype)
        base.to(device)
        base.set_progress_bar_config(disable=True)
        self.base = base
        self.device = device
        # A 9-channel UNet is an inpainting model: it cannot draw without a mask.
        self.inpaint_only = getattr(base.unet.config, "in_channels", 4) == 9
        self._pipes: dict[str, Any] = {}
        self._base_scheduler = base.scheduler
        self.passes = manifest.options.get("image_passes") or (
            "shared" if device == "cuda" else "per_image")
        if self.passes not in PASSES:
            raise ValueError(f"model '{manifest.id}': image_passes must be one of "
                             f"{', '.join(PASSES)} (got {self.passes!r})")
        self.memory_bytes = manifest.resources.memory or sum(
            p.numel() * p.element_size() for p in base.unet.parameters())

    # -- what the model host calls -----------------------------------------------------

    def group_key(self, method: str, kwargs: dict[str, Any]) -> Hashable:
        size = _call_size(kwargs)
        return (size, kwargs.get("steps"), kwargs.get("cfg"), kwargs.get("denoise"),
                kwargs.get("sampler", "default"), kwargs.get("scheduler", "normal"))

    def group_limit(self, method: str, kwargs: dict[str, Any]) -> int:
        """Images one batched call may hold at this size: MAX_GROUP at 512x512 and fewer
        above, so that shared runs never need more memory than two 1024 px pictures. With
        per-image passes, one call: its images are drawn one by one anyway."""
        if self.passes == "per_image":
            return 1
        width, height = _call_size(kwargs)
        return max(1, MAX_GROUP * 512 * 512 // max(1, width * height))

    def text_to_image(self, calls: list[dict[str, Any]], emit: Emit) -> list[dict[str, Any]]:
        """Each call: prompt, negative_prompt, width, height, steps, cfg, seed, batch_size,
        sampler, scheduler, preview. Streams ``{"step", "total"}``; returns
        ``{"images", "seeds"}`` per call (image i of a call uses seed + i)."""
        first = calls[0]
        return self._run("text2img", calls, emit, lambda call: {},
                         width=first["width"], height=first["height"])

    def image_to_image(self, calls: list[dict[str, Any]], emit: Emit) -> list[dict[str, Any]]:
        """Each call adds ``image`` (PIL, sides multiples of 8) and ``denoise`` (0-1]."""
        return self._run("img2img", calls, emit, lambda call: {"image": call["image"]},
                         strength=calls[0]["denoise"])

    def inpaint(self, calls: list[dict[str, Any]], emit: Emit) -> list[dict[str, Any]]:
        """Each call adds ``image`` and ``mask`` (L, white = repaint) of the same size."""
        width, height = calls[0]["image"].size
        return self._run("inpaint", calls, emit,
                         lambda call: {"image": call["image"], "mask_image": call["mask"]},
                         strength=calls[0]["denoise"], width=width, height=height)

    # -- the runs ----------------------------------------------------------------------

    def _pipe(self, task: str) -> Any:
        if self.inpaint_only and task != "inpaint":
            raise ValueError("this is an inpainting model: it needs an image and a mask "
                             "(use image.Inpaint, or a text-to-image model)")
        if task not in self._pipes:
            with quiet_loading():
                from diffusers import (
                    AutoPipelineForImage2Image,
                    AutoPipelineForInpainting,
                    AutoPipelineForText2Image,
                )
                auto = {"text2img": AutoPipelineForText2Image,
                        "img2img": AutoPipelineForImage2Image,
                        "inpaint": AutoPipelineForInpainting}[task]
                pipe = auto.from_pipe(self.base)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[task] = pipe
        return self._pipes[task]

    def _run(self, task: str, calls: list[dict[str, Any]], emit: Emit,
             pictures: Callable[[dict[str, Any]], dict[str, Any]],
             **common: Any) -> list[dict[str, Any]]:
        settings = calls[0]
        self._patched("unet")  # a LoraLoader graph's patches are not this run's
        self._patched("clip")
        if task == "text2img" and settings.get("sampler") in KSAMPLERS:
            # ComfyUI's samplers run as ComfyUI runs them (see parts.PartCalls).
            self._pipe(task)  # refuses an inpainting-only model as the pipeline would
            return self.text_to_image_as_comfyui(calls, [_seeds(c) for c in calls], emit,
                                                 AbandonedError)
        pipe = self._pipe(task)
        pipe.scheduler = scheduler_for(self._base_scheduler, settings.get("sampler", "default"),
                                       settings.get("scheduler", "normal"))
        seeds = [_seeds(c) for c in calls]
        common.update(num_inference_steps=settings["steps"], guidance_scale=settings["cfg"])
        if self.passes == "shared":
            return self._shared(pipe, calls, seeds, emit, pictures, common)
        return self._per_image(pipe, calls, seeds, emit, pictures, common)

    def _per_image(self, pipe: Any, calls: list[dict[str, Any]], seeds: list[list[int]],
                   emit: Emit, pictures: Callable[[dict[str, Any]], dict[str, Any]],
                   common: dict[str, Any]) -> list[dict[str, Any]]:
        """Every image is its own pipeline call with batch size one, whatever else is being
        drawn: the same shapes reach the same kernels, so image i of a batch seeded s has
        exactly the pixels of a single image seeded s + i, alone or beside other requests.
        On a CPU this costs nothing: a batch takes as long as its images one by one."""
        import torch

        results = []
        for index, call in enumerate(calls):
            images = []
            for number, seed in enumerate(seeds[index]):
                on_step = self._step_reporter(emit, index, call, number, len(seeds[index]))
                output = pipe(prompt=[call["prompt"]],
                              negative_prompt=[call.get("negative_prompt") or ""],
                              generator=[torch.Generator(device="cpu").manual_seed(seed)],
                              callback_on_step_end=on_step, **pictures(call), **common)
                images.extend(output.images)
            results.append({"images": images, "seeds": seeds[index]})
        return results

    def _step_reporter(self, emit: Emit, index: int, call: dict[str, Any], number: int,
                       count: int) -> Callable[..., dict[str, Any]]:
        """The step callback of image ``number`` of ``count`` of call ``index``: progress
        counts over the call's images; a call whose caller has gone stops at once."""

        def on_step(pipeline: Any, step: int, timestep: Any,
                    tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(pipeline, "num_timesteps", 0) or call["steps"])
            update: dict[str, Any] = {"step": number * total + step + 1,
                                      "total": count * total}
            if call.get("preview"):
                preview = latent_preview(tensors.get("latents"))
                if preview:
                    update["preview"] = preview
            if not emit(index, update):
                raise AbandonedError(f"the request was cancelled at step {step + 1}")
            return tensors

        return on_step

    def _shared(self, pipe: Any, calls: list[dict[str, Any]], seeds: list[list[int]],
                emit: Emit, pictures: Callable[[dict[str, Any]], dict[str, Any]],
                common: dict[str, Any]) -> list[dict[str, Any]]:
        """All images of all calls in one batched pipeline call: a GPU draws a batch in
        about the time of one image. Kernels chosen by batch shape round differently, so an
        image matches its single-image twin within a few levels, not bit for bit."""
        import torch

        settings = calls[0]
        sizes = [len(group) for group in seeds]
        starts = [sum(sizes[:i]) for i in range(len(calls))]
        per_image: dict[str, list[Any]] = {}
        for call, size in zip(calls, sizes, strict=True):
            for name, value in pictures(call).items():
                per_image.setdefault(name, []).extend([value] * size)
        wants_preview = {i for i, c in enumerate(calls) if c.get("preview")}

        def on_step(pipeline: Any, step: int, timestep: Any,
                    tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(pipeline, "num_timesteps", 0) or settings["steps"])
            update = {"step": step + 1, "total": total}
            latents = tensors.get("latents")
            wanted = False
            for index in range(len(calls)):  # one update per call, its own preview
                preview = latent_preview(latents[starts[index]:starts[index] + 1]) \
                    if index in wants_preview and latents is not None else None
                wanted = emit(index, {**update, "preview": preview} if preview
                              else update) or wanted
            if not wanted:  # every caller has gone (cancelled): free the model now
                raise AbandonedError(f"every request of this run was cancelled at step "
                                     f"{step + 1}")
            return tensors

        output = pipe(prompt=[c["prompt"] for c, n in zip(calls, sizes, strict=True)
                              for _ in range(n)],
                      negative_prompt=[c.get("negative_prompt") or ""
                                       for c, n in zip(calls, sizes, strict=True)
                                       for _ in range(n)],
                      generator=[torch.Generator(device="cpu").manual_seed(s)
                                 for group in seeds for s in group],
                      callback_on_step_end=on_step, **per_image, **common)
        return [{"images": output.images[start:start + size], "seeds": group}
                for start, size, group in zip(starts, sizes, seeds, strict=True)]


def _load(manifest: ModelManifest, weights: Path, dtype: Any) -> Any:
    from diffusers import DiffusionPipeline

    if weights.is_file():  # one .safetensors/.ckpt checkpoint, as Civitai ships them
        from nodes.backends.checkpoint import config_folder, load_single_file

        # Its architecture comes from the local config folder the manifest names.
        return load_single_file(weights, config_folder(manifest, weights), dtype,
                                arch=manifest.options.get("arch") or "sd1")
    return DiffusionPipeline.from_pretrained(str(weights), dtype=dtype)


def _call_size(kwargs: dict[str, Any]) -> tuple[int, int]:
    image = kwargs.get("image")
    return image.size if image is not None else (int(kwargs.get("width") or 512),
                                                 int(kwargs.get("height") or 512))


def _size(call: dict[str, Any]) -> int:
    return max(int(call.get("batch_size", 1) or 1), 1)


def _seeds(call: dict[str, Any]) -> list[int]:
    count = _size(call)
    seed = int(call.get("seed", -1))
    first = seed if seed >= 0 else secrets.randbelow(2**31 - count)
    return [first + i for i in range(count)]
