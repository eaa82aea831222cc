"""ComfyUI's value conventions, and the crossings between them and HomePilot's own.

HomePilot's nodes pass pictures as PIL images; ComfyUI's core nodes pass float tensors.
Both travel on IMAGE/MASK ports, so every core node accepts either (``image_tensor``,
``mask_tensor``) and our own nodes get PIL images back (``engine`` converts at their
inputs through ``pictures_of``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.types import IMAGE, MASK, Port

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


def image_tensor(value: Any) -> Any:
    """An IMAGE as ComfyUI has it (float32 B×H×W×C in 0..1) from a tensor, a PIL image or a
    list of PIL images of one size."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        image = value.float()
        return image.unsqueeze(0) if image.ndim == 3 else image
    pictures = value if isinstance(value, (list, tuple)) else [value]
    if not pictures or not all(hasattr(p, "convert") for p in pictures):
        raise TypeError(f"expected an IMAGE, got {type(value).__name__}")
    arrays = [np.asarray(p.convert("RGBA" if p.mode in ("RGBA", "LA", "PA") else "RGB"),
                         dtype=np.float32) / 255.0 for p in pictures]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("the pictures of one IMAGE batch must share one size")
    return torch.from_numpy(np.stack(arrays))


def mask_tensor(value: Any) -> Any:
    """A MASK as ComfyUI has it (float32 B×H×W, 1 = selected) from a tensor or a PIL
    mask (mode L, 255 = selected)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        mask = value.float()
        if mask.ndim == 2:
            return mask.unsqueeze(0)
        if mask.ndim == 4 and mask.shape[-1] == 1:  # B×H×W×1, as some packs hand it over
            return mask[..., 0]
        return mask
    pictures = value if isinstance(value, (list, tuple)) else [value]
    if not pictures or not all(hasattr(p, "convert") for p in pictures):
        raise TypeError(f"expected a MASK, got {type(value).__name__}")
    return torch.from_numpy(np.stack([np.asarray(p.convert("L"), dtype=np.float32) / 255.0
                                      for p in pictures]))


def pictures_of(value: Any) -> list[Any]:
    """An IMAGE tensor (B×H×W×C) as PIL images, one per batch item: values are clipped
    to 0..1 and truncated to 8 bits, as ComfyUI's SaveImage writes them."""
    import numpy as np
    from PIL import Image as PILImage

    image = image_tensor(value)
    pixels = np.clip(image.detach().cpu().numpy() * 255.0, 0, 255).astype(np.uint8)
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if pixels.shape[-1] not in modes:
        raise ValueError(f"an IMAGE has 1, 3 or 4 channels, not {pixels.shape[-1]}")
    return [PILImage.fromarray(p[..., 0] if p.shape[-1] == 1 else p, modes[p.shape[-1]])
            for p in pixels]


def mask_pictures(value: Any) -> list[Any]:
    """A MASK tensor as PIL masks (mode L, 255 = selected), one per batch item."""
    import numpy as np
    from PIL import Image as PILImage

    mask = mask_tensor(value)
    pixels = np.clip(mask.detach().cpu().numpy() * 255.0, 0, 255).astype(np.uint8)
    return [PILImage.fromarray(p, "L") for p in pixels]


def latent(samples: Any, **extra: Any) -> dict[str, Any]:
    """A LATENT dict: ``samples`` plus whichever of ``noise_mask``/``batch_index`` apply."""
    return {"samples": samples, **{k: v for k, v in extra.items() if v is not None}}
