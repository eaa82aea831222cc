"""Build the test pack into the model store and register it (marked as test models)."""

from __future__ import annotations

import shutil

from engine.models.manifest import ModelManifest, ModelResources
from engine.models.store import ModelStore
from nodes.testpack.diffusion import build_tiny_sd

TINY_SD = "test-sd-tiny"


def install_test_pack(store: ModelStore) -> list[str]:
    """Build (again) and register every test model; returns their ids."""
    weights = store.folder(TINY_SD) / "weights"
    if weights.exists():
        shutil.rmtree(weights)
    build_tiny_sd(weights)
    store.register(ModelManifest(
        id=TINY_SD, kind="diffusion", format="diffusers", source="test-pack",
        path="weights", backend="nodes.backends.diffusers_sd:DiffusersBackend", test=True,
        resources=ModelResources(gpu=0.25, memory=32 * 1024**2),
        description="Tiny random-weight Stable Diffusion (64x64 class) for tests"))
    return [TINY_SD]
