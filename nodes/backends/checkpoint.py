"""Single-file Stable Diffusion checkpoints (``.safetensors`` or ``.ckpt`` in the original
CompVis/LDM key layout, as Civitai ships them), loaded with local files only.

diffusers' ``from_single_file`` learns the architecture from a diffusers-format config
folder (model_index.json and each component's config). Without ``config=`` it guesses the
model type from key names and fetches that model's configs from the Hub, falling back to a
download even when ``local_files_only=True`` if they are not cached. A checkpoint here
therefore always names its local config folder, and a missing one is an error that says so.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from engine.models.manifest import ModelManifest

SAFETENSORS = (".safetensors",)
PICKLED = (".ckpt", ".pt")
PIPELINES = {"sd1": "StableDiffusionPipeline", "sd2": "StableDiffusionPipeline",
             "sdxl": "StableDiffusionXLPipeline"}
UNET_PREFIX = "model.diffusion_model."


class CheckpointError(ValueError):
    """A single-file checkpoint that cannot be loaded, and why."""


def config_folder(manifest: ModelManifest, weights: Path) -> Path | None:
    """The manifest's ``config`` option as a folder: absolute, or relative to the model's
    folder in the store, as the manifest's own ``path`` is (the store resolved ``weights``
    from it, so the model's folder is ``weights`` less that path's parts)."""
    option = manifest.options.get("config")
    if not option:
        return None
    config = Path(option)
    if config.is_absolute():
        return config
    relative = Path(manifest.path)
    base = weights.parent if relative.is_absolute() else weights.parents[len(relative.parts) - 1]
    return base / config


def load_single_file(path: Path, config_dir: Path | None, dtype: torch.dtype | None = None,
                     arch: str = "sd1") -> Any:
    """The pipeline of one checkpoint file, its components configured by ``config_dir``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if config_dir is None:
        raise CheckpointError(
            f"{path.name}: a single-file checkpoint needs a local diffusers-format config "
            "folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/); "
            "set the model's 'config' option to it")
    config_dir = Path(config_dir)
    if not (config_dir / "model_index.json").is_file():
        raise CheckpointError(
            f"{path.name}: the config folder {config_dir} is missing or has no "
            "model_index.json (it needs the diffusers-format configs of this architecture)")
    if arch not in PIPELINES:
        raise CheckpointError(f"{path.name}: unknown arch {arch!r} (one of "
                              f"{', '.join(PIPELINES)})")
    _check_layout(path)
    import diffusers

    loader = getattr(diffusers, PIPELINES[arch])
    extra = {"dtype": dtype} if dtype is not None else {}
    return loader.from_single_file(str(path), config=str(config_dir), local_files_only=True,
                                   **extra)


# What each architecture's text encoder is stored as (the first hit decides).
_ARCH_KEYS = (("conditioner.embedders.", "sdxl"), ("cond_stage_model.model.", "sd2"),
              ("cond_stage_model.transformer.", "sd1"))


def detect_arch(path: Path) -> str:
    """sd1, sd2 or sdxl, from the checkpoint's key names (a .safetensors header is read
    without its tensors)."""
    path = Path(path)
    names = _names(path)
    if not any(name.startswith(UNET_PREFIX) for name in names):
        raise CheckpointError(
            f"{path.name}: no '{UNET_PREFIX}*' weights, so not an original (LDM-layout) "
            "Stable Diffusion checkpoint (a lone UNet, VAE or LoRA file?)")
    for prefix, arch in _ARCH_KEYS:
        if any(name.startswith(prefix) for name in names):
            return arch
    raise CheckpointError(f"{path.name}: no text encoder weights of SD 1.x, 2.x or XL, so "
                          "its architecture is not one loaded here")


def _names(path: Path) -> list[str]:
    return list(tensor_shapes(path))


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's name and shape; a .safetensors file's header is read without its
    tensors (a .ckpt has to be read whole)."""
    if path.suffix.lower() in SAFETENSORS:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as opened:
            return {name: tuple(opened.get_slice(name).get_shape()) for name in opened.keys()}
    return {name: tuple(value.shape) for name, value in read_state_dict(path).items()
            if hasattr(value, "shape")}


def read_state_dict(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors by name. ``.ckpt`` files are unpickled with
    ``weights_only=True`` (a pickle can run code; tensors and plain containers are all a
    checkpoint needs) and memory-mapped when zip-based, and LDM's ``state_dict`` wrapper
    (with ``global_step`` and the like beside it) is unwrapped."""
    import torch

    if path.suffix.lower() in SAFETENSORS:
        from safetensors.torch import load_file
        return load_file(str(path))
    if path.suffix.lower() not in PICKLED:
        raise CheckpointError(f"{path.name}: not a checkpoint file (expected one of "
                              f"{', '.join(SAFETENSORS + PICKLED)})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True,
                           mmap=zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise CheckpointError(
            f"{path.name}: torch.load(weights_only=True) refused it, so it holds more than "
            f"tensors or is damaged; convert it to .safetensors ({error})") from error
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path.name}: holds a {type(state).__name__}, not a state dict")
    return state


def _check_layout(path: Path) -> None:
    """Refuse a file that is not an LDM-layout pipeline before diffusers reads it: its own
    error for that ("Weights for this component appear to be missing") does not say so.
    A .ckpt is read in full (memory-mapped when zip-based) and diffusers reads it again."""
    detect_arch(path)
