"""A model's manifest: what it is, where its files are, what it needs to run."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

# unet and clip: a lone diffusion model or text encoder file (ComfyUI's UNETLoader, CLIPLoader)
ModelKind = Literal["llm", "embedding", "diffusion", "inpaint", "upscaler", "video", "vae",
                    "unet", "clip"]
_ID = re.compile(r"^[a-z0-9][a-z0-9._\-]{0,127}$")


class ModelResources(BaseModel):
    """What a loaded model holds: a GPU fraction when the cluster has GPUs, and memory."""

    gpu: float = Field(0.0, ge=0, description="GPU fraction the host asks for on GPU clusters")
    memory: int = Field(0, ge=0, description="bytes the loaded model holds (RAM or VRAM)")


class ModelManifest(BaseModel):
    id: str
    kind: ModelKind
    format: str = Field(description="gguf, transformers, sentence-transformers, diffusers, ...")
    source: str = Field(description="where it came from: pypi:<package>, hf:<repo>, url:..., local")
    path: str = Field(description="the weights: a file or folder, absolute or relative to the "
                                  "model's folder in the store")
    backend: str = Field(description="'module:Class' that loads and serves it")
    size_bytes: int = 0
    resources: ModelResources = Field(default_factory=ModelResources)
    bundled: bool = False
    test: bool = False
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    architecture: str = Field("", description="the family generation presets follow for a "
                              "diffusion model (sd15, sdxl, pony_xl, flux_dev, ...); '' "
                              "when unknown: read from its weights' config")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("a model id is lower-case letters, digits, '.', '_' and '-'")
        return value
