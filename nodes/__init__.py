"""Built-in nodes, one domain per module; ``build_registry`` is the registry factory."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from engine.registry import Registry, RegistrySource

# Modules whose @node classes are built in. Heavy libraries are imported inside run().
MODULES = ("primitive", "text", "math", "logic", "lists", "image", "llm", "embed",
           "generate", "enhance", "video", "graph", "knowledge", "retrieval", "structured",
           "refine",
           # ComfyUI's core nodes, under ComfyUI's names
           "comfy.loader", "comfy.clip", "comfy.lora", "comfy.conditioning",
           "comfy.sampling", "comfy.vae",
           "comfy.latent", "comfy.picture", "comfy.mask", "comfy.files", "comfy.video",
           "comfy.upscale", "comfy.background", "comfy.controlnet")


def build_registry(custom_node_dirs: Sequence[str | Path] = ()) -> Registry:
    """All built-in nodes plus every pack found in ``custom_node_dirs``."""
    from engine.comfy.loader import load_packs

    dirs = [str(d) for d in custom_node_dirs]
    registry = Registry(RegistrySource(factory="nodes:build_registry", custom_node_dirs=dirs))
    for name in MODULES:
        # ComfyUI's core nodes carry its core module name, so its frontend lists them
        # as core nodes rather than as a pack's.
        registry.register_module(importlib.import_module(f"nodes.{name}"),
                                 source="nodes" if name.startswith("comfy.") else None)
    load_packs(registry, dirs)
    return registry
