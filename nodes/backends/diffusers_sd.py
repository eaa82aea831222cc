"""Stable Diffusion-family pipelines saved as diffusers folders (text to image)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest


class DiffusersBackend:
    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from diffusers import AutoPipelineForText2Image

        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # a logical GPU from Ray without CUDA in this torch build
        dtype = torch.float16 if device == "cuda" else torch.float32
        self.pipeline = AutoPipelineForText2Image.from_pretrained(str(weights), dtype=dtype)
        self.pipeline.to(device)
        self.pipeline.set_progress_bar_config(disable=True)
        self.device = device
        self.memory_bytes = manifest.resources.memory or sum(
            p.numel() * p.element_size() for p in self.pipeline.unet.parameters())

    def text_to_image(self, prompt: str, negative_prompt: str = "", width: int = 512,
                      height: int = 512, steps: int = 25, cfg: float = 7.0, seed: int = -1,
                      batch_size: int = 1) -> Iterator[dict[str, Any]]:
        """``{"step", "total"}`` per denoising step, then ``{"images", "seeds"}``.

        Image i uses seed ``seed + i``; -1 picks a random seed (reported back).
        """
        import torch

        first = seed if seed >= 0 else secrets.randbelow(2**31 - batch_size)
        seeds = [first + i for i in range(batch_size)]
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        # The pipeline reports steps through a callback; a thread runs it so that this
        # generator can hand each step on as it happens.
        import queue
        import threading

        channel: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def step_callback(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict:
            channel.put({"step": step + 1, "total": steps})
            return kwargs

        result: dict[str, Any] = {}

        def run() -> None:
            try:
                output = self.pipeline(
                    prompt=[prompt] * batch_size, negative_prompt=[negative_prompt] * batch_size
                    if negative_prompt else None, width=width, height=height,
                    num_inference_steps=steps, guidance_scale=cfg, generator=generators,
                    callback_on_step_end=step_callback)
                result["images"] = output.images
            except BaseException as exc:  # handed to the consumer
                result["error"] = exc
            finally:
                channel.put(None)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while (update := channel.get()) is not None:
            yield update
        worker.join()
        if "error" in result:
            raise result["error"]
        yield {"images": result["images"], "seeds": seeds}
