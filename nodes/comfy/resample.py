"""ComfyUI's one resize routine (``common_upscale``): images and latents alike.

Every resizing core node goes through ``upscale`` so the modes, the centre crop and the
rounding agree everywhere (ImageScale, LatentUpscale, and the hint and init-image
resizes of the conditioning nodes). Tensors are N×C×H×W (or N×C×T×H×W for video latents).
"""

from __future__ import annotations

from typing import Any

# torch.nn.functional.interpolate modes ComfyUI passes through unchanged (no antialias,
# align_corners left at its default).
TORCH_MODES = ("nearest-exact", "bilinear", "area", "bicubic")
IMAGE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
LATENT_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
CROP_METHODS = ["disabled", "center"]


def center_crop(samples: Any, width: int, height: int) -> Any:
    """The middle of ``samples`` with the aspect ratio of width × height; the cut per side
    is rounded as ComfyUI rounds it (Python's round, half to even)."""
    old_width, old_height = samples.shape[-1], samples.shape[-2]
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    return samples.narrow(-2, y, old_height - 2 * y).narrow(-1, x, old_width - 2 * x)


def upscale(samples: Any, width: int, height: int, method: str, crop: str = "disabled") -> Any:
    """``samples`` resized to width × height by ``method``, centre-cropped first when
    ``crop`` is "center"."""
    import torch

    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}: both sides must be at least 1")
    shape = tuple(samples.shape)
    if len(shape) > 4:  # video latents: every frame is resized as an image of its own
        frames = samples.reshape(shape[0], shape[1], -1, shape[-2], shape[-1]).movedim(2, 1)
        samples = frames.reshape(-1, shape[1], shape[-2], shape[-1])
    source = center_crop(samples, width, height) if crop == "center" else samples
    if method == "bislerp":
        out = bislerp(source, width, height)
    elif method == "lanczos":
        out = lanczos(source, width, height)
    elif method in TORCH_MODES:
        out = torch.nn.functional.interpolate(source, size=(height, width), mode=method)
    else:
        raise ValueError(f"unknown upscale method {method!r}")
    if len(shape) <= 4:
        return out
    out = out.reshape(shape[0], -1, shape[1], height, width).movedim(2, 1)
    return out.reshape(*shape[:-2], height, width)


def lanczos(samples: Any, width: int, height: int) -> Any:
    """Pillow's Lanczos on each picture, through 8 bits as ComfyUI does (so it quantises:
    the result is a multiple of 1/255)."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    results = []
    for picture in samples:
        pixels = np.clip(255.0 * picture.movedim(0, -1).detach().cpu().float().numpy(), 0, 255)
        pixels = pixels.astype(np.uint8)
        single = pixels.shape[-1] == 1  # Pillow has no H×W×1 mode: a mask goes as "L"
        image = PILImage.fromarray(pixels[..., 0] if single else pixels)
        resized = np.asarray(image.resize((width, height), PILImage.Resampling.LANCZOS),
                             dtype=np.float32) / 255.0
        resized = resized[..., None] if single else resized
        results.append(torch.from_numpy(resized).movedim(-1, 0))
    return torch.stack(results).to(samples.device, samples.dtype)


def _slerp(start: Any, end: Any, ratio: Any) -> Any:
    """Rows of ``start`` and ``end`` (M×C) blended by ``ratio`` (M×1): the directions are
    slerped and the lengths lerped. Nearly equal directions keep ``start``; opposite ones
    fall back to a plain lerp (the sphere path is undefined there)."""
    import torch

    start_norm = torch.linalg.vector_norm(start, dim=-1, keepdim=True)
    end_norm = torch.linalg.vector_norm(end, dim=-1, keepdim=True)
    # A zero vector has no direction: it counts as the zero direction, not NaN.
    start_dir = torch.where(start_norm == 0, 0.0, start / start_norm)
    end_dir = torch.where(end_norm == 0, 0.0, end / end_norm)
    dot = (start_dir * end_dir).sum(-1)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    r = ratio[:, 0]
    blended = ((torch.sin((1.0 - r) * omega) / sin_omega)[:, None] * start_dir
               + (torch.sin(r * omega) / sin_omega)[:, None] * end_dir)
    blended = blended * (start_norm * (1.0 - ratio) + end_norm * ratio)
    same = dot > 1 - 1e-5
    opposite = dot < 1e-5 - 1
    blended[same] = start[same]
    blended[opposite] = (start * (1.0 - ratio) + end * ratio)[opposite]
    return blended


def _neighbours(old: int, new: int, device: Any) -> tuple[Any, Any, Any]:
    """For each of ``new`` output positions: the left and right source index and the
    fraction between them, placed exactly as bilinear interpolation places them (half-pixel
    centres, clamped at the edges); computed by interpolating the index ramp itself so the
    float rounding matches torch's bilinear mode."""
    import torch

    ramp = torch.arange(old, dtype=torch.float32, device=device).reshape(1, 1, 1, -1)
    left = torch.nn.functional.interpolate(ramp, size=(1, new), mode="bilinear")
    fraction = left - left.floor()
    shifted = ramp + 1
    shifted[..., -1] -= 1  # the right neighbour of the last pixel is itself
    right = torch.nn.functional.interpolate(shifted, size=(1, new), mode="bilinear")
    return fraction.reshape(-1), left.to(torch.int64).reshape(-1), right.to(torch.int64).reshape(-1)


def bislerp(samples: Any, width: int, height: int) -> Any:
    """ComfyUI's latent resize that keeps vector lengths: along the width, then along the
    height, each output is the slerp of its two neighbours' channel vectors."""
    dtype = samples.dtype
    samples = samples.float()
    n, c, h, w = samples.shape

    fraction, left, right = _neighbours(w, width, samples.device)
    rows = samples.movedim(1, -1)  # N×H×W×C: one channel vector per pixel
    flat = _slerp(rows[:, :, left].reshape(-1, c), rows[:, :, right].reshape(-1, c),
                  fraction[None, None, :].expand(n, h, width).reshape(-1, 1))
    wide = flat.reshape(n, h, width, c)

    fraction, top, bottom = _neighbours(h, height, samples.device)
    flat = _slerp(wide[:, top].reshape(-1, c), wide[:, bottom].reshape(-1, c),
                  fraction[None, :, None].expand(n, height, width).reshape(-1, 1))
    return flat.reshape(n, height, width, c).movedim(-1, 1).to(dtype)
