"""ComfyUI's value conventions: the handles of model parts, the port annotations of the
core nodes, and LATENT dicts.

HomePilot's nodes pass pictures as PIL images; ComfyUI's core nodes pass float tensors.
Both travel on IMAGE/MASK ports, so every core node accepts either (``image_tensor``,
``mask_tensor``, from ``engine.pictures``) and our own nodes get PIL images back (the
engine converts at their inputs, ``engine.types.as_pil``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.pictures import image_tensor, mask_pictures, mask_tensor, pictures_of
from engine.types import IMAGE, MASK, Port

__all__ = ["Component", "ImageTensor", "MaskTensor", "image_tensor", "latent",
           "mask_pictures", "mask_tensor", "pictures_of"]

# ComfyUI's MAX_RESOLUTION: the largest side any size input takes.
MAX_RESOLUTION = 16384

# The port annotations of ComfyUI's core nodes. Unlike ``engine.types.Image``/``Mask``
# (HomePilot's nodes, which get PIL images) they hand the value over untouched, tensor
# or PIL alike; the node calls ``image_tensor``/``mask_tensor``.
ImageTensor = Annotated[Any, Port(IMAGE)]
MaskTensor = Annotated[Any, Port(MASK)]


class Component(BaseModel):
    """A MODEL, CLIP or VAE value: which resident model host holds it, and which part.

    ``loras`` are (file, strength) pairs applied on the host before the part is used, so a
    patched model is still the one resident pipeline (LoraLoader never copies weights).
    """

    model_config = ConfigDict(frozen=True)

    model: str  # the model id in the store (``test-sd-tiny``, ``checkpoint-foo``...)
    kind: str = "diffusion"  # the model kind its host was loaded as
    part: Literal["unet", "clip", "vae", "clip_vision"]
    loras: tuple[tuple[str, float], ...] = ()
    min_cfg: float | None = None  # VideoLinearCFGGuidance

    def __repr__(self) -> str:
        return f"<{self.part} of {self.model}>"


def latent(samples: Any, **extra: Any) -> dict[str, Any]:
    """A LATENT dict: ``samples`` plus whichever of ``noise_mask``/``batch_index`` apply."""
    return {"samples": samples, **{k: v for k, v in extra.items() if v is not None}}
