"""A deterministic camera-motion renderer: a still becomes a short clip without any model.

This is what ``video.ImageToVideo`` falls back to when no video model is installed. Every
motion is a path of "views" (a zoom factor and a centre offset) over the still, fitted to
the output's aspect ratio; each frame is the view's box resampled from the picture, so
moves are sub-pixel smooth. Eased in and out (a half cosine), so a clip neither starts
nor stops with a jolt.

Conventions:

- ``pan_right`` moves the *camera* right across the picture, so the content slides left
  in the frame (and likewise for the other pans).
- Frame 0 is the still, fitted (centre-cropped) to the output's aspect ratio, for every
  motion but ``zoom_out``, which pulls back from a 1 + 0.3 × strength zoom to end on the
  whole still (showing more than the still holds would mean inventing picture). Pans
  need picture beyond the frame's edge, so they push in (to 1 + 0.25 × strength) while
  they travel, ending against the edge they move towards.
- ``parallax`` splits the still into two layers: a foreground estimated from centre
  weighting and edge density (subjects tend to be central and detailed, backgrounds soft),
  and a background in which that region is filled from its surroundings. The foreground
  drifts and grows faster than the background, which reads as depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "parallax")

ZOOM = 0.3  # zoom_in / zoom_out reach 1 + ZOOM × strength
PAN_ZOOM = 0.25  # pans push in to 1 + PAN_ZOOM × strength, giving them room to move
PARALLAX_BACK_ZOOM = 0.06
PARALLAX_FRONT_ZOOM = 0.12
PARALLAX_BACK_SHIFT = 0.02  # fractions of the frame's width over the clip
PARALLAX_FRONT_SHIFT = 0.07
FILL_IN = 4.0  # the background fill is complete a quarter of the way into the move
MAX_STRENGTH = 3.0


@dataclass(frozen=True)
class View:
    """Which part of the still a frame shows: ``zoom`` ≥ 1 and the view's centre offset
    from the picture's centre, as fractions of its width and height."""

    zoom: float = 1.0
    dx: float = 0.0
    dy: float = 0.0


def ease(t: float) -> float:
    """Half-cosine ease in and out: 0 → 0, 1 → 1, zero speed at both ends."""
    return (1.0 - math.cos(math.pi * min(max(t, 0.0), 1.0))) / 2.0


def camera_view(motion: str, progress: float, strength: float) -> View:
    """The view of a camera motion at ``progress`` (0-1, already eased)."""
    if motion == "zoom_in":
        return View(1.0 + ZOOM * strength * progress)
    if motion == "zoom_out":
        return View(1.0 + ZOOM * strength * (1.0 - progress))
    # Pans push in as they travel, so they start on the whole still yet never run out of
    # picture: the view always touches the edge it travels towards.
    zoom = 1.0 + PAN_ZOOM * strength * progress
    travel = (1.0 - 1.0 / zoom) / 2.0
    dx, dy = {"pan_left": (-travel, 0.0), "pan_right": (travel, 0.0),
              "pan_up": (0.0, -travel), "pan_down": (0.0, travel)}[motion]
    return View(zoom, dx, dy)


def view_box(view: View, width: int, height: int) -> tuple[float, float, float, float]:
    """The view's box in a ``width`` × ``height`` picture, kept inside the picture."""
    box_w, box_h = width / view.zoom, height / view.zoom
    left = min(max((0.5 + view.dx) * width - box_w / 2, 0.0), width - box_w)
    top = min(max((0.5 + view.dy) * height - box_h / 2, 0.0), height - box_h)
    return (left, top, left + box_w, top + box_h)


def fit_still(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` as an RGB picture of exactly ``width`` × ``height``, centre-cropped to that
    aspect ratio rather than stretched (what frame 0 of a clip shows)."""
    rgb = image.convert("RGB")
    if rgb.size == (width, height):
        return rgb
    return ImageOps.fit(rgb, (width, height), Image.Resampling.LANCZOS)


def fitted_source(image: Image.Image, width: int, height: int, zoom: float) -> Image.Image:
    """The still cropped to the output's aspect ratio, kept at up to ``zoom`` × the output
    size so that zoomed frames show the picture's own detail rather than an upscale."""
    rgb = image.convert("RGB")
    scale = max(1.0, min(zoom, rgb.width / width, rgb.height / height))
    size = (max(width, round(width * scale)), max(height, round(height * scale)))
    return ImageOps.fit(rgb, size, Image.Resampling.LANCZOS)


def render_view(source: Image.Image, view: View, width: int, height: int) -> Image.Image:
    # resize with a float box resamples (with antialiasing) just that region: sub-pixel
    # accurate, so slow moves do not step from pixel to pixel.
    return source.resize((width, height), Image.Resampling.BICUBIC,
                         box=view_box(view, source.width, source.height))


def render_motion(image: Image.Image, frames: int, width: int, height: int,
                  motion: str = "zoom_in", strength: float = 1.0) -> list[Image.Image]:
    """``frames`` RGB frames of exactly ``width`` × ``height`` moving over ``image``.

    ``strength`` scales the move (0 keeps the still; 1 is a gentle move; at most 3).
    The same arguments always give the same pixels.
    """
    return list(iter_motion(image, frames, width, height, motion, strength))


def iter_motion(image: Image.Image, frames: int, width: int, height: int,
                motion: str = "zoom_in", strength: float = 1.0) -> Iterator[Image.Image]:
    """``render_motion`` one frame at a time, for callers that report progress."""
    if motion not in MOTIONS:
        raise ValueError(f"motion {motion!r} is not one of {', '.join(MOTIONS)}")
    if frames < 1 or width < 1 or height < 1:
        raise ValueError(f"cannot render {frames} frame(s) of {width}x{height}")
    strength = min(max(float(strength), 0.0), MAX_STRENGTH)
    progress = [ease(i / (frames - 1)) if frames > 1 else 0.0 for i in range(frames)]
    if motion == "parallax":
        yield from _parallax(image, progress, width, height, strength)
        return
    largest = max(camera_view(motion, p, strength).zoom for p in (0.0, 1.0))
    source = fitted_source(image, width, height, largest)
    for p in progress:
        yield render_view(source, camera_view(motion, p, strength), width, height)


# -- parallax -----------------------------------------------------------------------------


def foreground_mask(still: Image.Image) -> np.ndarray:
    """A soft foreground estimate in [0, 1].

    No depth model is involved. A rough blob comes from centre weighting times edge
    density (subjects tend to be central and detailed); its uncertain rim is then decided
    by colour (closer to the blob's core or to the surroundings), so the layer follows the
    subject's outline instead of cutting through it. A flat picture gets (almost) no
    foreground, and the motion becomes a gentle zoom.
    """
    pixels = np.asarray(still.convert("RGB"), dtype=np.float32)
    blob = _blob(still)
    core, outside = blob > 0.9, blob < 0.05
    side = max(still.size)
    if core.sum() < 16 or outside.sum() < 16:
        return blob
    near_core = np.linalg.norm(pixels - pixels[core].mean(axis=0), axis=-1)
    near_outside = np.linalg.norm(pixels - pixels[outside].mean(axis=0), axis=-1)
    by_colour = np.clip((near_outside / (near_core + near_outside + 1e-6) - 0.5) * 3 + 0.5,
                        0.0, 1.0)
    reach = np.asarray(_grow(blob > 0.05, side / 24), dtype=np.float32) / 255.0
    mask = np.where(core, 1.0, by_colour * reach)
    feathered = _grow(mask, side / 120, close=True).filter(ImageFilter.GaussianBlur(side / 160))
    return np.asarray(feathered, dtype=np.float32) / 255.0


def _blob(still: Image.Image) -> np.ndarray:
    """Centre weighting times edge density, thresholded softly and closed."""
    width, height = still.size
    side = max(width, height)
    edges = still.convert("L").filter(ImageFilter.FIND_EDGES)
    density = np.asarray(edges.filter(ImageFilter.GaussianBlur(side / 8)), dtype=np.float32)
    scale = float(np.percentile(density, 98))
    density = np.clip(density / scale, 0.0, 1.0) if scale > 1.0 else np.zeros_like(density)
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width
    # Subjects sit a little below the middle more often than above it.
    centre = np.exp(-((xs[None, :] - 0.5) ** 2 / (2 * 0.2 ** 2)
                      + (ys[:, None] - 0.55) ** 2 / (2 * 0.24 ** 2)))
    blob = np.clip((centre * (0.3 + 0.7 * density) - 0.25) / 0.15, 0.0, 1.0)
    # Closing fills the inside of a flat-coloured subject, whose detail is its outline.
    return np.asarray(_grow(blob, side / 40, close=True), dtype=np.float32) / 255.0


def _grow(mask: np.ndarray, radius: float, close: bool = False) -> Image.Image:
    """``mask`` (0-1 or bool) as an L image, dilated by ``radius`` px (then eroded back
    by as much when ``close``)."""
    import cv2  # OpenCV's square dilation costs the same for any radius; Pillow's
    # MaxFilter grows with its square, minutes at 1536 px (imported here: validate and
    # the registry need not load OpenCV)

    size = 2 * max(1, round(radius)) + 1
    kernel = np.ones((size, size), np.uint8)
    pixels = (np.asarray(mask, dtype=np.float32) * 255 + 0.5).astype(np.uint8)
    grown = cv2.dilate(pixels, kernel, borderType=cv2.BORDER_REPLICATE)
    if close:
        grown = cv2.erode(grown, kernel, borderType=cv2.BORDER_REPLICATE)
    return Image.fromarray(grown, "L")


def fill_behind(still: Image.Image, mask: np.ndarray) -> Image.Image:
    """The still with the foreground region filled from its surroundings (normalised
    convolution: a blur of the background divided by a blur of where background is), so
    the moving foreground uncovers plausible colour rather than a ghost of itself."""
    pixels = np.asarray(still, dtype=np.float32)
    # Everything the foreground might leave behind, with a margin, is treated as hole, so
    # no rim of the subject stays in the background to be uncovered as a ghost.
    keep = (np.asarray(_grow(mask > 0.1, max(still.size) / 48)) == 0).astype(np.float32)
    if keep.min() == 1.0:
        return still
    if keep.max() == 0.0:
        return Image.new("RGB", still.size, tuple(int(c) for c in pixels.mean(axis=(0, 1))))
    filled = pixels.copy()
    hole = keep < 1.0
    radius = max(still.size) / 16
    pending = hole.copy()
    for _ in range(5):  # widen the blur until every hole pixel has background nearby
        weight = _blur(keep, radius)
        colour = np.stack([_blur(pixels[..., c] * keep, radius) for c in range(3)], axis=-1)
        ready = pending & (weight > 1e-3)
        filled[ready] = colour[ready] / weight[ready, None]
        pending &= ~ready
        if not pending.any():
            break
        radius *= 2
    if pending.any():
        filled[pending] = pixels[keep > 0].mean(axis=0)
    soft = mask[..., None]
    blended = pixels * (1.0 - soft) + filled * soft
    return Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8), "RGB")


def _blur(values: np.ndarray, radius: float) -> np.ndarray:
    """A Gaussian-like blur of a float plane: three box blurs along each axis (Pillow's
    GaussianBlur takes 8-bit images only, and the fill divides two blurred planes)."""
    size = max(1, round(radius))
    blurred = values.astype(np.float32)
    for axis in (0, 1):
        for _ in range(3):
            blurred = _box(blurred, size, axis)
    return blurred


def _box(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    # A running mean over 2·size + 1 samples from a cumulative sum, the edges clamped.
    padded = np.pad(values, [(size + 1, size) if a == axis else (0, 0) for a in (0, 1)],
                    mode="edge")
    sums = np.cumsum(padded, axis=axis, dtype=np.float64)
    upper = np.take(sums, np.arange(2 * size + 1, sums.shape[axis]), axis=axis)
    lower = np.take(sums, np.arange(0, sums.shape[axis] - 2 * size - 1), axis=axis)
    return ((upper - lower) / (2 * size + 1)).astype(np.float32)


def _shifted(layer: Image.Image, zoom: float, shift_x: float, resample: Image.Resampling,
             ) -> Image.Image:
    """``layer`` zoomed about its centre and moved ``shift_x`` px, same size; what comes in
    from outside is black (its mask is 0 there, so it never shows)."""
    width, height = layer.size
    cx, cy = width / 2, height / 2
    # AFFINE maps output pixels to input pixels: the inverse of zoom-then-shift.
    data = (1 / zoom, 0.0, cx - (cx + shift_x) / zoom, 0.0, 1 / zoom, cy - cy / zoom)
    return layer.transform(layer.size, Image.Transform.AFFINE, data, resample)


def _parallax(image: Image.Image, progress: list[float], width: int, height: int,
              strength: float) -> Iterator[Image.Image]:
    back_zoom = 1.0 + PARALLAX_BACK_ZOOM * strength
    source = fitted_source(image, width, height, back_zoom)
    still = fit_still(source, width, height)
    mask = foreground_mask(still)
    background = fill_behind(source, _resized_mask(mask, source.size))
    mask_image = Image.fromarray((mask * 255 + 0.5).astype(np.uint8), "L")
    for p in progress:
        # The filled background fades in over the first moments, while the foreground has
        # hardly moved: frame 0 is the still itself, not a blend of still and fill.
        behind = Image.blend(source, background, min(1.0, p * FILL_IN))
        # The camera moves right: both layers slide left, the nearer one further.
        back = render_view(behind, View(1.0 + PARALLAX_BACK_ZOOM * strength * p,
                                        PARALLAX_BACK_SHIFT * strength * p), width, height)
        zoom = 1.0 + PARALLAX_FRONT_ZOOM * strength * p
        shift = -PARALLAX_FRONT_SHIFT * strength * p * width
        front = _shifted(still, zoom, shift, Image.Resampling.BICUBIC)
        alpha = _shifted(mask_image, zoom, shift, Image.Resampling.BILINEAR)
        yield Image.composite(front, back, alpha)


def _resized_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape[::-1] == size:
        return mask
    plane = Image.fromarray(mask.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(plane, dtype=np.float32)
