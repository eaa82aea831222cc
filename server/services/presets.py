"""Image and video generation presets: quality tiers, per-architecture values, sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from server.errors import ApiError

IMAGE_PRESETS: dict[str, dict[str, Any]] = {
    "low": {"label": "Low (Fast)", "description": "Quick drafts", "steps": 20, "cfg": 7.0},
    "med": {"label": "Medium (Balanced)", "description": "Good quality at a fair speed",
            "steps": 25, "cfg": 7.0},
    "high": {"label": "High (Quality)", "description": "More detail, slower", "steps": 35,
             "cfg": 8.0},
    "ultra": {"label": "Ultra (Best)", "description": "Best quality, slowest", "steps": 50,
              "cfg": 8.5},
}
# architecture -> preset -> (steps, cfg); architectures tuned away from SD1.5's values.
IMAGE_ARCH: dict[str, dict[str, tuple[int, float]]] = {
    "sd15": {p: (v["steps"], v["cfg"]) for p, v in IMAGE_PRESETS.items()},
    "sdxl": {"low": (20, 5.0), "med": (30, 5.5), "high": (40, 6.0), "ultra": (50, 6.5)},
    "pony_xl": {"low": (20, 6.0), "med": (25, 6.5), "high": (35, 7.0), "ultra": (45, 7.0)},
    "noobai_xl": {"low": (20, 5.0), "med": (28, 5.5), "high": (35, 6.0), "ultra": (45, 6.0)},
    "noobai_xl_vpred": {"low": (20, 4.0), "med": (28, 4.5), "high": (35, 5.0),
                        "ultra": (45, 5.0)},
    "flux_schnell": {"low": (4, 1.0), "med": (4, 1.0), "high": (6, 1.0), "ultra": (8, 1.0)},
    "flux_dev": {"low": (20, 3.5), "med": (28, 3.5), "high": (35, 3.5), "ultra": (50, 3.5)},
}
ASPECTS = {"1:1": "Square", "4:3": "Landscape 4:3", "3:4": "Portrait 3:4",
           "2:3": "Portrait 2:3", "16:9": "Widescreen", "9:16": "Vertical", "1:2": "Tall"}
# Training-bucket sizes: XL-class models at ~1 megapixel, SD1.5 at ~0.25 megapixel.
_XL_SIZES = {"1:1": (1024, 1024), "4:3": (1152, 896), "3:4": (896, 1152),
             "2:3": (832, 1216), "16:9": (1216, 832), "9:16": (832, 1216), "1:2": (704, 1408)}
_SD15_SIZES = {"1:1": (512, 512), "4:3": (576, 448), "3:4": (448, 576), "2:3": (512, 768),
               "16:9": (768, 432), "9:16": (432, 768), "1:2": (384, 768)}


def _architecture(model: str | None) -> str:
    """An architecture key, or one guessed from a checkpoint file name."""
    if not model:
        return "sd15"
    name = model.lower()
    if name in IMAGE_ARCH:
        return name
    for needle, arch in (("schnell", "flux_schnell"), ("flux", "flux_dev"),
                         ("pony", "pony_xl"), ("noobai", "noobai_xl"), ("xl", "sdxl")):
        if needle in name:
            return arch
    return "sd15"


# diffusers pipeline classes (model_index.json) and checkpoint arch options -> family
_PIPELINES = {"StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLInpaintPipeline": "sdxl",
              "FluxPipeline": "flux_dev", "StableDiffusionPipeline": "sd15",
              "StableDiffusionInpaintPipeline": "sd15"}
_CHECKPOINT_ARCHES = {"sd1": "sd15", "sd2": "sd15", "sdxl": "sdxl"}


def architecture(manifest: ModelManifest, weights: Path) -> str:
    """The preset family of an installed diffusion model: its manifest's ``architecture``,
    else what its weights say (a checkpoint's ``arch``, a diffusers folder's pipeline
    class), else a guess from its name."""
    if manifest.architecture in IMAGE_ARCH:
        return manifest.architecture
    arch = _CHECKPOINT_ARCHES.get(str(manifest.options.get("arch") or ""))
    if arch:
        return arch
    index = weights / "model_index.json"
    if weights.is_dir() and index.is_file():
        try:
            name = json.loads(index.read_text()).get("_class_name", "")
        except (OSError, ValueError):
            name = ""
        if name in _PIPELINES:
            return _PIPELINES[name]
    return _architecture(manifest.path.rsplit("/", 1)[-1] or manifest.id)


def image_size(arch: str, aspect: str) -> tuple[int, int]:
    return (_SD15_SIZES if arch == "sd15" else _XL_SIZES)[aspect]


def image_preset(model: str | None, preset: str | None,
                 aspect_ratio: str | None) -> dict[str, Any]:
    preset = preset or "med"
    if preset not in IMAGE_PRESETS:
        raise ApiError(400, "invalid_preset", f"Unknown preset: {preset}. Valid presets: "
                       f"{', '.join(IMAGE_PRESETS)}")
    arch = _architecture(model)
    aspects = [a for a in ASPECTS if not (arch.startswith("flux") and a == "1:2")]
    aspect = aspect_ratio or "1:1"
    if aspect not in aspects:
        raise ApiError(400, "invalid_aspect_ratio", f"Unknown aspect ratio for {arch}: "
                       f"{aspect}. Valid: {', '.join(aspects)}")
    steps, cfg = IMAGE_ARCH[arch][preset]
    width, height = image_size(arch, aspect)
    body: dict[str, Any] = {
        "ok": True, "preset": preset, "model": model or arch, "aspect_ratio": aspect,
        "values": {"steps": steps, "cfg": cfg, "width": width, "height": height},
        "model_rules": {"default_aspect_ratio": "1:1", "architecture": arch,
                        "notes": "sizes are the model's training buckets"},
        "ui": {k: IMAGE_PRESETS[preset][k] for k in ("label", "description")},
        "compatible_aspect_ratios": [
            {"id": a, "label": ASPECTS[a],
             "dimensions": dict(zip(("width", "height"), image_size(arch, a), strict=True))}
            for a in aspects],
        "default_aspect_ratio": "1:1",
        "preset_ui": {p: {"label": v["label"], "description": v["description"]}
                      for p, v in IMAGE_PRESETS.items()},
        "available_presets": list(IMAGE_PRESETS)}
    if model:
        body["preset_resolutions"] = {
            a: {p: dict(zip(("width", "height"), image_size(arch, a), strict=True))
                for p in IMAGE_PRESETS} for a in aspects}
    return body


VIDEO_PRESETS: dict[str, dict[str, Any]] = {
    "low": {"fps": 8, "seconds": 2, "frames": 25, "steps": 20, "cfg": 2.5, "denoise": 0.75,
            "max_frames": 49, "label": "Low", "short": "Fast preview"},
    "medium": {"fps": 16, "seconds": 4, "frames": 49, "steps": 25, "cfg": 3.5,
               "denoise": 0.85, "max_frames": 97, "label": "Medium", "short": "Balanced"},
    "high": {"fps": 24, "seconds": 4, "frames": 97, "steps": 32, "cfg": 4.0, "denoise": 0.8,
             "max_frames": 97, "label": "High", "short": "Smooth"},
    "ultra": {"fps": 24, "seconds": 4, "frames": 97, "steps": 40, "cfg": 4.0,
              "denoise": 0.8, "max_frames": 129, "label": "Ultra", "short": "Best"},
}
# model -> rules: how many frames it accepts
VIDEO_MODELS: dict[str, dict[str, Any]] = {
    "svd": {"frame_rule": "14 or 25 frames", "valid_frames": [14, 25], "min_frames": 14},
    "ltx": {"frame_rule": "8n+1 frames", "valid_frames": [25, 49, 97, 129], "min_frames": 9},
    "wan": {"frame_rule": "4n+1 frames", "valid_frames": [25, 49, 81], "min_frames": 5},
    "hunyuan": {"frame_rule": "4n+1 frames", "valid_frames": [25, 49, 97, 129],
                "min_frames": 5},
    "mochi": {"frame_rule": "6n+1 frames", "valid_frames": [25, 49, 85], "min_frames": 7},
    "cogvideo": {"frame_rule": "8n+1 frames", "valid_frames": [25, 49], "min_frames": 9},
}
VIDEO_ASPECTS = {"16:9": (1024, 576), "9:16": (576, 1024), "1:1": (768, 768),
                 "4:3": (960, 720), "3:4": (720, 960), "3:2": (960, 640), "21:9": (1344, 576)}
_TIER_SCALE = {"test": 0.25, "low": 0.5, "medium": 0.75, "high": 1.0, "ultra": 1.25}


def _scaled(size: tuple[int, int], scale: float) -> dict[str, int]:
    # Video models want sides divisible by 32.
    return {"width": max(32, round(size[0] * scale / 32) * 32),
            "height": max(32, round(size[1] * scale / 32) * 32)}


def video_preset(model: str | None, preset: str | None,
                 aspect_ratio: str | None) -> dict[str, Any]:
    preset = {"med": "medium"}.get(preset or "medium", preset or "medium")
    if preset not in VIDEO_PRESETS:
        raise ApiError(400, "invalid_preset", f"Unknown preset: {preset}. Valid presets: "
                       f"{', '.join(VIDEO_PRESETS)}")
    model = model or "svd"
    if model not in VIDEO_MODELS:
        raise ApiError(400, "invalid_model", f"Unknown video model: {model}. Valid: "
                       f"{', '.join(VIDEO_MODELS)}")
    aspect = aspect_ratio or "16:9"
    if aspect not in VIDEO_ASPECTS:
        raise ApiError(400, "invalid_aspect_ratio", f"Unknown aspect ratio: {aspect}. "
                       f"Valid: {', '.join(VIDEO_ASPECTS)}")
    tier = dict(VIDEO_PRESETS[preset])
    rules = VIDEO_MODELS[model]
    valid = [f for f in rules["valid_frames"] if f <= tier["max_frames"]]
    frames = min(valid, key=lambda f: abs(f - tier["frames"]))
    values = {k: tier[k] for k in ("fps", "seconds", "steps", "cfg", "denoise", "max_frames")}
    values.update(frames=frames, **_scaled(VIDEO_ASPECTS[aspect], _TIER_SCALE[preset]))
    return {"ok": True, "preset": preset, "model": model, "aspect_ratio": aspect,
            "values": values,
            "model_rules": {**rules, "default_aspect_ratio": "16:9",
                            "default_negative_prompt": "blurry, distorted, low quality"},
            "ui": {"label": tier["label"], "short": tier["short"],
                   "description": f"{tier['fps']} fps, {tier['seconds']} s"},
            "compatible_aspect_ratios": [
                {"id": a, "label": a, "dimensions": _scaled(size, _TIER_SCALE[preset]),
                 "all_dimensions": {t: _scaled(size, s) for t, s in _TIER_SCALE.items()}}
                for a, size in VIDEO_ASPECTS.items()],
            "default_aspect_ratio": "16:9"}
