"""Classic outpainting: a bigger canvas and a fill for its new border, no model needed.

The fill is the low frequencies of a Telea inpaint, done on a copy at most ``FILL_SIDE``
pixels on a side, plus the high frequencies of the original mirrored across its edges
(fading with distance), so wide extensions keep some texture. The original pixels are
left bit-exact. ``retouch`` re-exports both functions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

MAX_EXTEND = 1024  # most pixels added on any one side
FILL_SIDE = 512  # longest side the inpaint works on


def _sides(left: int, right: int, top: int, bottom: int) -> tuple[int, int, int, int]:
    sides = (left, right, top, bottom)
    for name, value in zip(("left", "right", "top", "bottom"), sides, strict=True):
        if int(value) != value or not 0 <= value <= MAX_EXTEND:
            raise ValueError(f"{name} must be a whole number from 0 to {MAX_EXTEND}, "
                             f"got {value}")
    return int(left), int(right), int(top), int(bottom)


def extend_canvas(image: Image.Image, left: int, right: int, top: int,
                  bottom: int) -> tuple[Image.Image, Image.Image]:
    """The image (RGB, alpha dropped) on a canvas grown by the given pixels per side, the
    new area holding the nearest edge pixel repeated, and a mode "L" mask of the same size
    that is 255 where pixels are new and 0 over the original (pasted at (left, top))."""
    left, right, top, bottom = _sides(left, right, top, bottom)
    rgb = np.asarray(image.convert("RGB"))
    canvas = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_REPLICATE)
    mask = np.full(canvas.shape[:2], 255, np.uint8)
    mask[top:top + rgb.shape[0], left:left + rgb.shape[1]] = 0
    return Image.fromarray(canvas), Image.fromarray(mask)


def telea_inpaint(rgb: np.ndarray, unknown: np.ndarray, radius: int) -> np.ndarray:
    """Telea's fast-marching inpaint of the non-zero ``unknown`` pixels, one float32
    channel at a time: OpenCV's 8-bit path drifts by tens of levels over wide regions."""
    channels = [cv2.inpaint(np.ascontiguousarray(rgb[..., c], dtype=np.float32), unknown,
                            radius, cv2.INPAINT_TELEA) for c in range(rgb.shape[2])]
    return np.clip(np.rint(np.dstack(channels)), 0, 255).astype(np.uint8)


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into 0..n-1 without repeating the edge (OpenCV's REFLECT_101)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    r = np.mod(index, period)
    return np.where(r < n, r, period - r)


def _upsampled(small: np.ndarray, scale_x: float, scale_y: float, x0: int, y0: int,
               x1: int, y1: int) -> np.ndarray:
    """The window [y0:y1, x0:x1] of ``small`` resized by 1/scale (bicubic), as float32."""
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5) * scale_x - 0.5
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5) * scale_y - 0.5
    map_x = np.broadcast_to(xs[None, :], (y1 - y0, x1 - x0)).astype(np.float32)
    map_y = np.broadcast_to(ys[:, None], (y1 - y0, x1 - x0)).astype(np.float32)
    return cv2.remap(small.astype(np.float32), map_x, map_y, cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REPLICATE)


def outpaint_fill(image: Image.Image, left: int, right: int, top: int,
                  bottom: int) -> Image.Image:
    """``extend_canvas`` with the new area filled by a downscaled Telea inpaint (low
    frequencies) plus edge-mirrored texture (high frequencies) fading with distance.
    Mode RGB; the original's RGB pixels stay bit-exact at (left, top)."""
    canvas_image, mask_image = extend_canvas(image, left, right, top, bottom)
    canvas = np.array(canvas_image)
    if not (left or right or top or bottom):
        return canvas_image
    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    height, width = canvas.shape[:2]
    scale = min(0.5, FILL_SIDE / max(height, width))
    sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
    small = cv2.resize(canvas, (sw, sh), interpolation=cv2.INTER_AREA)
    unknown = (cv2.resize(np.array(mask_image), (sw, sh), interpolation=cv2.INTER_AREA) > 0)
    unknown = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8))
    if unknown.all():  # the original shrank to nothing: its mean colour is all we know
        base_small = np.broadcast_to(rgb.reshape(-1, 3).mean(axis=0), small.shape)
    else:
        base_small = telea_inpaint(small, unknown, 3)
        base_small = cv2.GaussianBlur(base_small, (0, 0), 1.0)
    sigma = 1.5 / scale  # the detail the low-resolution base lacks
    margin = int(math.ceil(3 * sigma))
    fade = max(32.0, 0.5 * min(h, w))
    bands = [(0, top, 0, width), (top + h, height, 0, width),
             (top, top + h, 0, left), (top, top + h, left + w, width)]
    for y0, y1, x0, x1 in bands:
        if y1 <= y0 or x1 <= x0:
            continue
        base = _upsampled(base_small, sw / width, sh / height, x0, y0, x1, y1)
        ys = _reflect(np.arange(y0 - margin, y1 + margin) - top, h)
        xs = _reflect(np.arange(x0 - margin, x1 + margin) - left, w)
        mirrored = rgb[np.ix_(ys, xs)].astype(np.float32)
        detail = mirrored - cv2.GaussianBlur(mirrored, (0, 0), sigma)
        detail = detail[margin:margin + y1 - y0, margin:margin + x1 - x0]
        dy = np.maximum(np.maximum(top - np.arange(y0, y1), np.arange(y0, y1) - (top + h - 1)), 0)
        dx = np.maximum(np.maximum(left - np.arange(x0, x1), np.arange(x0, x1) - (left + w - 1)),
                        0)
        distance = np.hypot(dy[:, None].astype(np.float32), dx[None, :].astype(np.float32))
        weight = (0.4 + 0.6 * np.exp(-distance / fade))[..., None]
        canvas[y0:y1, x0:x1] = np.clip(np.rint(base + weight * detail), 0, 255).astype(np.uint8)
    canvas[top:top + h, left:left + w] = rgb
    return Image.fromarray(canvas)
