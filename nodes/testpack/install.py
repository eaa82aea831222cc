"""Build the test pack into the model store and register it (marked as test models).

Each model is saved through the same save/load path real models of its kind use
(diffusers folders, a ``.pth`` state dict in Real-ESRGAN's layout, a single-file SD 1.x
checkpoint in the original LDM layout, a ControlNet file in ComfyUI's models/controlnet
folder in ControlNet's own layout), so tests exercise the real loading code.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from engine.models.manifest import ModelManifest, ModelResources
from engine.models.store import ModelStore

TINY_SD = "test-sd-tiny"
TINY_INPAINT = "test-sd-inpaint-tiny"
TINY_UPSCALER = "test-upscaler-tiny"
TINY_VIDEO = "test-video-tiny"
# Sorts after TINY_SD on purpose: the store's default diffusion model is the first test
# model by id, and the suite expects that to stay the diffusers-format TINY_SD.
TINY_CHECKPOINT = "test-sd-tiny-ckpt"
# Also after TINY_SD ("test-sd-" < "test-sdx"), for the same reason.
TINY_SDXL = "test-sdxl-tiny"
TEST_MODELS = (TINY_SD, TINY_INPAINT, TINY_UPSCALER, TINY_VIDEO, TINY_CHECKPOINT, TINY_SDXL)
# Not a store model: a file of ComfyUI's models/controlnet folder (its config.json beside
# it), for TINY_CHECKPOINT's UNet.
TINY_CONTROLNET = "test-pack/control_v11p_sd15_tiny.safetensors"

DIFFUSERS = "nodes.backends.diffusers_sd:DiffusersBackend"


def _sd(path: Path) -> None:
    from nodes.testpack.diffusion import build_tiny_sd
    build_tiny_sd(path)


def _inpaint(path: Path) -> None:
    from nodes.testpack.diffusion import build_tiny_sd
    build_tiny_sd(path, seed=1, inpaint=True)


def _upscaler(path: Path) -> None:
    from nodes.testpack.upscaler import build_tiny_upscaler
    path.mkdir(parents=True)
    build_tiny_upscaler(path / "tiny_x4plus.pth")


def _video(path: Path) -> None:
    from nodes.testpack.video import build_tiny_svd
    build_tiny_svd(path)


def _sdxl(path: Path) -> None:
    from nodes.testpack.sdxl import build_tiny_sdxl
    build_tiny_sdxl(path)


def _checkpoint(path: Path) -> None:
    from nodes.testpack.checkpoint import build_tiny_checkpoint
    build_tiny_checkpoint(path)


# id -> (builder into a folder, manifest fields)
_PACK: dict[str, tuple[Callable[[Path], None], dict]] = {
    TINY_SD: (_sd, dict(
        kind="diffusion", format="diffusers", path="weights", backend=DIFFUSERS,
        architecture="sd15", resources=ModelResources(gpu=0.25, memory=32 * 1024**2),
        description="Tiny random-weight Stable Diffusion 1.5-shaped (8x VAE; 512x512 at 25 "
                    "steps in about a second on two cores) for tests")),
    TINY_INPAINT: (_inpaint, dict(
        kind="inpaint", format="diffusers", path="weights", backend=DIFFUSERS,
        architecture="sd15", resources=ModelResources(gpu=0.25, memory=32 * 1024**2),
        description="Tiny random-weight Stable Diffusion inpainting (9-channel UNet)")),
    TINY_UPSCALER: (_upscaler, dict(
        kind="upscaler", format="pth", path="weights/tiny_x4plus.pth",
        backend="nodes.backends.upscaler:UpscalerBackend",
        resources=ModelResources(gpu=0.1, memory=4 * 1024**2),
        description="Tiny random-weight RRDBNet x4 in RealESRGAN_x4plus's layout")),
    TINY_VIDEO: (_video, dict(
        kind="video", format="diffusers", path="weights",
        backend="nodes.backends.diffusers_video:VideoBackend",
        resources=ModelResources(gpu=0.25, memory=64 * 1024**2),
        description="Tiny random-weight image-to-video pipeline for tests")),
    TINY_CHECKPOINT: (_checkpoint, dict(
        kind="diffusion", format="checkpoint", path="weights/tiny-sd1.safetensors",
        backend=DIFFUSERS, options={"arch": "sd1", "config": "weights/config"},
        architecture="sd15",
        resources=ModelResources(gpu=0.25, memory=32 * 1024**2),
        description="Tiny random-weight SD 1.x as one LDM-layout .safetensors checkpoint "
                    "(Civitai's layout), with its diffusers config folder")),
    TINY_SDXL: (_sdxl, dict(
        kind="diffusion", format="diffusers", path="weights", backend=DIFFUSERS,
        options={"arch": "sdxl"}, architecture="sdxl",
        resources=ModelResources(gpu=0.25, memory=32 * 1024**2),
        description="Tiny random-weight SDXL (two text encoders, size conditioning, 8x VAE)")),
}


def install_test_pack(store: ModelStore) -> list[str]:
    """Build (again) and register every test model; returns their ids."""
    for model_id, (build, fields) in _PACK.items():
        folder = store.folder(model_id) / "weights"
        if folder.exists():
            shutil.rmtree(folder)
        build(folder)
        store.register(ModelManifest(id=model_id, source="test-pack", test=True, **fields))
    from nodes.testpack.controlnet import build_tiny_controlnet
    shutil.rmtree(_controlnet_folder(store), ignore_errors=True)
    build_tiny_controlnet(store.root / "controlnet" / TINY_CONTROLNET)
    return list(_PACK)


def _controlnet_folder(store: ModelStore) -> Path:
    return (store.root / "controlnet" / TINY_CONTROLNET).parent


def remove_test_pack(store: ModelStore) -> list[str]:
    """Remove every installed test model; returns the ids removed."""
    removed = []
    for model_id in TEST_MODELS:
        if store.folder(model_id).joinpath("manifest.json").exists():
            store.remove(model_id)
            removed.append(model_id)
    shutil.rmtree(_controlnet_folder(store), ignore_errors=True)
    return removed
