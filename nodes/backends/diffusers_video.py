"""Image to video with a diffusers pipeline: Stable Video Diffusion (SVD, SVD-XT) from a
local folder.

The pipeline call blocks until the clip is decoded, and its only window on progress is
the step callback. The call therefore runs on the backend's own pipeline thread (always
the same one: torch's OpenMP pool is built per calling thread, and a new thread per call
would leave idle pools behind), while ``image_to_video`` — a generator on the model host's
worker — relays each step as it happens and ends with the frames.

How the inputs map onto SVD's call:

- ``motion`` → ``motion_bucket_id = round(127 × motion)``, clamped to 0-255: 1.0 is
  SVD's default bucket (127), 0 asks for an almost still clip, 2.0 for about the most
  motion it was trained on (254).
- ``cfg`` → ``max_guidance_scale``; SVD ramps guidance linearly over the frames from
  ``min_guidance_scale`` (manifest option, default 1.0) on the first to ``cfg`` on the
  last. ``cfg`` ≤ 1 turns classifier-free guidance off (half the work per step).
- ``fps`` → SVD's fps conditioning (the pipeline passes fps - 1, as SVD was trained).
- The still is centre-cropped to the clip's aspect ratio, then resized by the pipeline.

Manifest options: ``decode_chunk_size`` (frames the VAE decodes at once, default 8: lower
saves memory), ``noise_aug_strength`` (default 0.02, SVD's), ``min_guidance_scale``.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from engine.models.manifest import ModelManifest
from nodes.backends.device import placement
from nodes.backends.motion import fit_still
from nodes.backends.quiet import quiet_loading
from nodes.backends.svd import SvdCalls

SEED_MAX = 2**31 - 1
DEFAULT_BUCKET = 127  # SVD's motion_bucket_id default


class _StoppedError(Exception):
    """Raised from the step callback when the consumer went away: ends the pipeline call
    at the next step instead of letting it finish a clip nobody reads."""


def motion_bucket(motion: float) -> int:
    """SVD's ``motion_bucket_id`` for a motion strength (1.0 → 127, SVD's default)."""
    return min(max(round(DEFAULT_BUCKET * float(motion)), 0), 255)


class VideoBackend(SvdCalls):  # SvdCalls: ComfyUI's img2vid nodes on the same pipeline
    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        import torch

        device, dtype = placement(device)
        with quiet_loading():
            from diffusers import DiffusionPipeline

            # DiffusionPipeline picks the class named in model_index.json (SVD's own).
            pipe = DiffusionPipeline.from_pretrained(str(weights), dtype=dtype)
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.device = device
        self.options = dict(manifest.options)
        self.memory_bytes = manifest.resources.memory or sum(
            p.numel() * p.element_size() for module in pipe.components.values()
            if isinstance(module, torch.nn.Module) for p in module.parameters())
        self._runner = ThreadPoolExecutor(1, thread_name_prefix=f"video-{manifest.id}")

    def image_to_video(self, image: Image.Image, frames: int, fps: int, steps: int,
                       cfg: float, seed: int, width: int, height: int,
                       motion: float = 1.0) -> Iterator[dict[str, Any]]:
        """Animate ``image`` into ``frames`` RGB frames of ``width`` × ``height`` (multiples
        of 8). Yields ``{"step", "total"}`` once per denoising step, then
        ``{"frames": [PIL images], "seed": used seed}``; seed -1 draws one."""
        _check(frames, steps, width, height)
        used = seed if seed >= 0 else secrets.randbelow(SEED_MAX)
        updates: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        stop = threading.Event()

        def on_step(pipeline: Any, step: int, timestep: Any,
                    tensors: dict[str, Any]) -> dict[str, Any]:
            if stop.is_set():
                raise _StoppedError
            total = int(getattr(pipeline, "num_timesteps", 0) or steps)
            updates.put({"step": step + 1, "total": total})
            return tensors

        call = self._call_arguments(fit_still(image, width, height), frames, fps, steps, cfg,
                                    used, width, height, motion)
        future: Future[Any] = self._runner.submit(self.pipe, callback_on_step_end=on_step,
                                                  **call)
        future.add_done_callback(lambda _: updates.put(None))
        try:
            while (update := updates.get()) is not None:
                yield update
            output = future.result()  # the pipeline's own error, if it failed
        finally:
            stop.set()  # a consumer that stopped early ends the run at its next step
        clip = [frame.convert("RGB") for frame in output.frames[0]]
        yield {"frames": clip, "seed": used}

    def _call_arguments(self, still: Image.Image, frames: int, fps: int, steps: int,
                        cfg: float, seed: int, width: int, height: int,
                        motion: float) -> dict[str, Any]:
        import torch

        options = self.options
        return {
            "image": still, "num_frames": frames, "height": height, "width": width,
            "num_inference_steps": steps, "fps": fps,
            "min_guidance_scale": min(float(options.get("min_guidance_scale", 1.0)), cfg),
            "max_guidance_scale": cfg, "motion_bucket_id": motion_bucket(motion),
            "noise_aug_strength": float(options.get("noise_aug_strength", 0.02)),
            "decode_chunk_size": min(int(options.get("decode_chunk_size", 8)), frames),
            # A CPU generator gives the same noise for a seed on every device.
            "generator": torch.Generator(device="cpu").manual_seed(seed),
            "output_type": "pil",
        }

    def close(self) -> None:
        self._runner.shutdown(wait=True, cancel_futures=True)


def _check(frames: int, steps: int, width: int, height: int) -> None:
    if frames < 1 or steps < 1:
        raise ValueError(f"need at least one frame and one step (got {frames} frames, "
                         f"{steps} steps)")
    if width < 8 or height < 8 or width % 8 or height % 8:
        raise ValueError(f"width and height must be multiples of 8 (got {width}x{height})")
