"""Stable Diffusion-family pipelines (SD 1.x/2.x, SDXL, and what else diffusers loads from
a local folder or a single file): text to image, image to image and inpainting.

The three tasks share one set of weights (``from_pipe``). Each task is ``grouped`` on the
model host: concurrent calls with the same size and settings run as one batched pipeline
call, each call keeping its own prompt and seeds. Everything runs on the host's worker
thread; progress leaves through ``emit`` from the pipeline's step callback.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from nodes.backends.device import placement
from nodes.backends.quiet import quiet_loading
from nodes.backends.sampler import latent_preview, scheduler_for

Emit = Callable[[int | None, Any], bool]
MAX_GROUP = 8  # images in one batched pipeline call


class AbandonedError(RuntimeError):
    """A run stopped between steps because no caller wants its pictures any more."""


class DiffusersBackend:
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
        self.memory_bytes = manifest.resources.memory or sum(
            p.numel() * p.element_size() for p in base.unet.parameters())

    # -- what the model host calls -----------------------------------------------------

    def group_key(self, method: str, kwargs: dict[str, Any]) -> Hashable:
        size = _call_size(kwargs)
        return (size, kwargs.get("steps"), kwargs.get("cfg"), kwargs.get("denoise"),
                kwargs.get("sampler", "default"), kwargs.get("scheduler", "normal"))

    def group_limit(self, method: str, kwargs: dict[str, Any]) -> int:
        """Images one batched call may hold at this size: MAX_GROUP at 512x512 and fewer
        above, so that shared runs never need more memory than two 1024 px pictures."""
        width, height = _call_size(kwargs)
        return max(1, MAX_GROUP * 512 * 512 // max(1, width * height))

    def text_to_image(self, calls: list[dict[str, Any]], emit: Emit) -> list[dict[str, Any]]:
        """Each call: prompt, negative_prompt, width, height, steps, cfg, seed, batch_size,
        sampler, scheduler, preview. Streams ``{"step", "total"}``; returns
        ``{"images", "seeds"}`` per call (image i of a call uses seed + i)."""
        first = calls[0]
        return self._run("text2img", calls, emit,
                         width=first["width"], height=first["height"])

    def image_to_image(self, calls: list[dict[str, Any]], emit: Emit) -> list[dict[str, Any]]:
        """Each call adds ``image`` (PIL, sides multiples of 8) and ``denoise`` (0-1]."""
        images = [c["image"] for c in calls for _ in range(_size(c))]
        return self._run("img2img", calls, emit, image=images, strength=calls[0]["denoise"])

    def inpaint(self, calls: list[dict[str, Any]], emit: Emit) -> list[dict[str, Any]]:
        """Each call adds ``image`` and ``mask`` (L, white = repaint) of the same size."""
        images = [c["image"] for c in calls for _ in range(_size(c))]
        masks = [c["mask"] for c in calls for _ in range(_size(c))]
        width, height = calls[0]["image"].size
        return self._run("inpaint", calls, emit, image=images, mask_image=masks,
                         strength=calls[0]["denoise"], width=width, height=height)

    # -- the shared run ----------------------------------------------------------------

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
             **inputs: Any) -> list[dict[str, Any]]:
        import torch

        settings = calls[0]
        pipe = self._pipe(task)
        pipe.scheduler = scheduler_for(self._base_scheduler, settings.get("sampler", "default"),
                                       settings.get("scheduler", "normal"))
        seeds = [_seeds(c) for c in calls]
        prompts = [c["prompt"] for c in calls for _ in range(_size(c))]
        negatives = [c.get("negative_prompt") or "" for c in calls for _ in range(_size(c))]
        generators = [torch.Generator(device="cpu").manual_seed(s) for group in seeds
                      for s in group]
        starts = [sum(_size(c) for c in calls[:i]) for i in range(len(calls))]
        wants_preview = {i for i, c in enumerate(calls) if c.get("preview")}

        def on_step(pipeline: Any, step: int, timestep: Any,
                    tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(pipeline, "num_timesteps", 0) or settings["steps"])
            update = {"step": step + 1, "total": total}
            if not wants_preview:
                wanted = emit(None, update)
            else:
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

        output = pipe(prompt=prompts, negative_prompt=negatives,
                      num_inference_steps=settings["steps"], guidance_scale=settings["cfg"],
                      generator=generators, callback_on_step_end=on_step, **inputs)
        results = []
        for index, call in enumerate(calls):
            images = output.images[starts[index]:starts[index] + _size(call)]
            results.append({"images": images, "seeds": seeds[index]})
        return results


def _load(manifest: ModelManifest, weights: Path, dtype: Any) -> Any:
    from diffusers import DiffusionPipeline

    if weights.is_file():  # one .safetensors/.ckpt checkpoint, as Civitai ships them
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        loader = StableDiffusionXLPipeline if manifest.options.get("arch") == "sdxl" \
            else StableDiffusionPipeline
        return loader.from_single_file(str(weights), dtype=dtype, local_files_only=True)
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
