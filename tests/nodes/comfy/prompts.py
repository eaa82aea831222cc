"""The API-format txt2img prompt the core-node tests build on, in HomePilot's workflow shape:
CheckpointLoaderSimple "4" → CLIPTextEncode "6"/"7" → EmptyLatentImage "5" → KSampler "3"
→ VAEDecode "8" → an output "9"."""

from __future__ import annotations

from typing import Any

from nodes.testpack.install import TINY_CHECKPOINT

Link = list[Any]


def txt2img(ckpt: str = TINY_CHECKPOINT, *, model: Link | None = None,
            clip: Link | None = None, vae: Link | None = None, seed: int = 7,
            steps: int = 2, cfg: float = 6.0, sampler: str = "euler",
            scheduler: str = "karras", size: int = 64, batch: int = 1,
            output: str = "SaveImage", prefix: str = "test/txt2img",
            **nodes: dict[str, Any]) -> dict[str, Any]:
    """The prompt; ``model``/``clip``/``vae`` rewire the parts (default: the checkpoint's),
    ``output`` is SaveImage, PreviewImage, image.Save or ``latent`` (a graph.Output of the
    KSampler's LATENT, no decoding), and ``nodes`` adds nodes by id (loaders, LoRAs...)."""
    clip = clip or ["4", 1]
    prompt: dict[str, Any] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": clip}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": clip}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": size, "height": size, "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": model or ["4", 0], "seed": seed, "steps": steps, "cfg": cfg,
            "sampler_name": sampler, "scheduler": scheduler, "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
    }
    if output == "latent":
        prompt["9"] = {"class_type": "graph.Output",
                       "inputs": {"name": "latent", "value": ["3", 0]}}
    else:
        prompt["8"] = {"class_type": "VAEDecode",
                       "inputs": {"samples": ["3", 0], "vae": vae or ["4", 2]}}
        # HomePilot's own image.* nodes take one "image"; ComfyUI's take "images"
        images = "image" if output.startswith("image.") else "images"
        prompt["9"] = {"class_type": output, "inputs": {images: ["8", 0]}}
        if output == "SaveImage":
            prompt["9"]["inputs"]["filename_prefix"] = prefix
    return {**prompt, **nodes}
