"""The picture formats the server decodes, in one place.

Pillow opens far more than pictures people send (EPS through Ghostscript, PSD, ICNS, ...),
each decoder a surface for malformed input. Every decoder of user-given bytes (uploads,
fetched URLs, files nodes load) opens them with ``formats=FORMATS``.

Also the one crossing between HomePilot's pictures (PIL images) and ComfyUI's (float
tensors), which the engine applies at node inputs.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
NAMES = "PNG, JPEG, WEBP, GIF, BMP or TIFF"


def decode_errors() -> tuple[type[BaseException], ...]:
    """What a malformed or unsupported picture raises while it is opened and decoded."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    return (UnidentifiedImageError, OSError, PILImage.DecompressionBombError, SyntaxError,
            ValueError, EOFError, TypeError, IndexError, struct.error)


def open_picture(data: bytes) -> Image:
    """The picture in ``data``, decoded in full (a truncated file fails here, not later);
    raises one of ``decode_errors()`` for anything else."""
    from PIL import Image as PILImage

    opened = PILImage.open(io.BytesIO(data), formats=FORMATS)
    try:
        opened.load()
    except BaseException:
        opened.close()
        raise
    return opened


# -- ComfyUI's picture tensors ---------------------------------------------------------
# ComfyUI's nodes pass IMAGE as float32 B×H×W×C in 0..1 and MASK as B×H×W (1 = selected);
# HomePilot's nodes pass PIL images. These cross between the two.

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
