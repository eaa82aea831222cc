"""Classic picture retouching: the labelled fallback behind upscale, enhance and background
when no learned model is installed, plus the one real model OpenCV ships (Haar faces).

Every function is pure and deterministic. Images come in as PIL images in RGB or RGBA
(other modes are converted: ones with transparency to RGBA, the rest to RGB); each
docstring says what mode comes out. The work is bounded for a small CPU: GrabCut runs
on a copy at most ``GRABCUT_SIDE`` pixels on a side and its mask is upsampled. The
outpaint fill lives in ``retouch_outpaint`` and is re-exported here.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFilter

from nodes.backends.retouch_outpaint import (
    MAX_EXTEND,
    extend_canvas,
    outpaint_fill,
    telea_inpaint,
)

__all__ = [
    "MAX_EXTEND", "blur_background", "enhance_faces", "enhance_photo", "extend_canvas",
    "face_model", "find_faces", "foreground_mask", "lanczos_upscale", "outpaint_fill",
    "remove_background", "restore",
]

GRABCUT_SIDE = 320  # longest side GrabCut sees
FACE_SIDE = 1280  # longest side the face detector sees
SPECK_LEVEL = 48  # a pixel this far from its 7x7 median (any channel) is a speck
HAAR_FILE = "haarcascade_frontalface_alt2.xml"  # fewer false hits than "default"

Box = tuple[int, int, int, int]


# -- plumbing ---------------------------------------------------------------------------

def _normalise(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "RGBA"):
        return image
    if image.mode in ("LA", "La", "PA", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")


def _split(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """The image as a writable uint8 RGB array and its alpha (None when it has none)."""
    arr = np.array(_normalise(image), dtype=np.uint8)
    if arr.shape[2] == 4:
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return arr, None


def _join(rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    if alpha is None:
        return Image.fromarray(np.ascontiguousarray(rgb))
    return Image.fromarray(np.dstack([rgb, alpha]))


def _unsharp(rgb: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigma)
    return cv2.addWeighted(rgb, 1.0 + amount, blurred, -amount, 0)


def _odd(value: float) -> int:
    n = max(1, int(round(value)))
    return n if n % 2 else n + 1


# -- upscale and enhance ----------------------------------------------------------------

def lanczos_upscale(image: Image.Image, scale: float) -> Image.Image:
    """Lanczos resampling then a mild unsharp mask on the colour; alpha is Lanczos-resized
    (premultiplied, never sharpened). RGB in gives RGB, alpha in gives RGBA."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    im = _normalise(image)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    resized = im.resize(size, Image.Resampling.LANCZOS)
    radius = min(2.0, max(0.6, 0.5 * scale))
    sharpen = ImageFilter.UnsharpMask(radius=radius, percent=60 if scale > 1 else 30,
                                      threshold=2)
    if resized.mode == "RGBA":
        alpha = resized.getchannel("A")
        out = resized.convert("RGB").filter(sharpen)
        out.putalpha(alpha)
        return out
    return resized.filter(sharpen)


def _levels(lightness: np.ndarray) -> np.ndarray:
    """Gentle auto-levels: the 0.5..99.5% range stretched a third of the way to 0..255,
    gaining at most 1.5x."""
    cumulative = np.cumsum(np.bincount(lightness.ravel(), minlength=256))
    lo, hi = np.searchsorted(cumulative, cumulative[-1] * np.array([0.005, 0.995]))
    if hi - lo < 2:
        return lightness
    want_lo, want_hi = lo * 0.67, hi + (255 - hi) * 0.33
    gain = min(1.5, (want_hi - want_lo) / (hi - lo))
    lut = (np.arange(256) - (lo + hi) / 2) * gain + (want_lo + want_hi) / 2
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)[lightness]


def _enhance_rgb(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lightness = _levels(lab[..., 0])
    equalised = cv2.createCLAHE(clipLimit=1.6, tileGridSize=(8, 8)).apply(lightness)
    lab[..., 0] = cv2.addWeighted(lightness, 0.4, equalised, 0.6, 0)
    out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    out = cv2.bilateralFilter(out, 5, 18, 3)
    return _unsharp(out, 1.0, 0.35)


def enhance_photo(image: Image.Image) -> Image.Image:
    """Gentle auto-levels and CLAHE (blended 60%) on the LAB lightness, a light bilateral
    denoise and a mild unsharp mask. Same size; RGB stays RGB, alpha is kept as is."""
    rgb, alpha = _split(image)
    return _join(_enhance_rgb(rgb), alpha)


def _remove_specks(rgb: np.ndarray) -> np.ndarray:
    median = cv2.medianBlur(rgb, 7)
    specks = (cv2.absdiff(rgb, median).max(axis=2) > SPECK_LEVEL).astype(np.uint8)
    if not specks.any():
        return rgb
    out = rgb.copy()
    out[specks > 0] = median[specks > 0]
    # Dust and scratch fragments (several pixels together) are inpainted from their
    # now speck-free surroundings; single pixels are done with the median alone.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(specks, connectivity=8)
    big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= 3) + 1
    if big.size:
        damage = np.isin(labels, big).astype(np.uint8)
        damage = cv2.dilate(damage, np.ones((3, 3), np.uint8))
        out = telea_inpaint(out, damage, 3)
    return out


def restore(image: Image.Image) -> Image.Image:
    """Speck and scratch removal (7x7-median outliers replaced, fragments Telea-inpainted),
    non-local-means denoising, then ``enhance_photo``. Same size and mode (RGB or RGBA)."""
    rgb, alpha = _split(image)
    rgb = _remove_specks(rgb)
    rgb = cv2.fastNlMeansDenoisingColored(rgb, None, 6, 6, 7, 15)
    return _join(_enhance_rgb(rgb), alpha)


# -- faces ------------------------------------------------------------------------------

def face_model() -> str | None:
    """Where the Haar frontal-face cascade is, or None when this OpenCV build lacks it."""
    if not hasattr(cv2, "CascadeClassifier"):
        return None
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not folder:
        return None
    path = Path(folder) / HAAR_FILE
    return str(path) if path.is_file() else None


_local = threading.local()  # a CascadeClassifier is not safe to share between threads


@lru_cache(maxsize=1)
def _has_face_model() -> bool:
    return face_model() is not None


def _cascade() -> cv2.CascadeClassifier:
    cascade = getattr(_local, "cascade", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(face_model())
        if cascade.empty():
            raise RuntimeError(f"could not load the face cascade {face_model()}")
        _local.cascade = cascade
    return cascade


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min(a[2] * a[3], b[2] * b[3])


def find_faces(image: Image.Image) -> list[Box]:
    """Viola-Jones Haar cascade (OpenCV's frontal-face model) on the equalised grey image:
    (x, y, w, h) boxes, overlapping ones merged to the larger, sorted. Empty when this
    OpenCV build ships no cascade (see ``face_model``)."""
    if not _has_face_model():
        return []
    grey = np.array(_normalise(image).convert("L"))
    height, width = grey.shape
    scale = min(1.0, FACE_SIDE / max(height, width))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    if min(grey.shape) < 24:
        return []
    grey = cv2.equalizeHist(grey)
    smallest = max(24, min(grey.shape) // 40)
    found = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                        minSize=(smallest, smallest))
    boxes: list[Box] = [(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                        for x, y, w, h in np.asarray(found).reshape(-1, 4).tolist()]
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: (-b[2] * b[3], b)):
        if all(_overlap(box, other) < 0.5 for other in kept):
            kept.append(box)
    return sorted(kept)


def _retouch_face(roi: np.ndarray) -> np.ndarray:
    """Skin smoothing (bilateral) with detail enhancement blended back in, as float32."""
    side = max(roi.shape[:2])
    scale = min(1.0, 640 / side)
    work = roi if scale == 1.0 else cv2.resize(
        roi, (max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))),
        interpolation=cv2.INTER_AREA)
    smooth = cv2.bilateralFilter(work, 0, 28, min(5.0, max(2.0, max(work.shape[:2]) / 60)))
    detail = cv2.detailEnhance(smooth, sigma_s=10, sigma_r=0.12)
    retouched = cv2.addWeighted(smooth, 0.65, detail, 0.35, 0)
    delta = retouched.astype(np.float32) - work.astype(np.float32)
    if scale < 1.0:
        delta = cv2.resize(delta, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_LINEAR)
    return roi.astype(np.float32) + delta


def enhance_faces(image: Image.Image) -> tuple[Image.Image, int]:
    """Haar-found faces smoothed (bilateral) and detail-enhanced inside a feathered ellipse
    each; returns (image, faces found). Same size and mode; no face gives an unchanged
    copy."""
    faces = find_faces(image)
    if not faces:
        return image.copy(), 0
    rgb, alpha = _split(image)
    height, width = rgb.shape[:2]
    for x, y, w, h in faces:
        x0, x1 = max(0, int(x - 0.25 * w)), min(width, int(x + 1.25 * w))
        y0, y1 = max(0, int(y - 0.3 * h)), min(height, int(y + 1.3 * h))
        roi = rgb[y0:y1, x0:x1]
        mask = np.zeros(roi.shape[:2], np.float32)
        centre = (int(x + w / 2) - x0, int(y + h / 2) - y0)
        cv2.ellipse(mask, centre, (max(1, int(w * 0.5)), max(1, int(h * 0.62))), 0, 0, 360,
                    1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.08 * w))[..., None]
        blended = roi.astype(np.float32) * (1 - mask) + _retouch_face(roi) * mask
        rgb[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return _join(rgb, alpha), len(faces)


# -- background -------------------------------------------------------------------------

def _grabcut(small: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """GrabCut labels (uint8, 1 = foreground) from a 5%-margin rectangle and the alpha:
    transparent is sure background, opaque margin pixels only probably background."""
    sh, sw = small.shape[:2]
    mx, my = max(1, round(sw * 0.05)), max(1, round(sh * 0.05))
    inside = np.zeros((sh, sw), bool)
    inside[my:sh - my, mx:sw - mx] = True
    if alpha is None:
        labels = np.where(inside, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    else:
        labels = np.where(inside, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        labels[alpha < 16] = cv2.GC_BGD
    if not (labels == cv2.GC_PR_FGD).any():
        return np.zeros((sh, sw), np.uint8)
    if (labels == cv2.GC_PR_FGD).all():
        return np.ones((sh, sw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(20240601)  # GrabCut seeds its colour models with k-means++
    try:
        cv2.grabCut(small, labels, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        pass  # degenerate colours (one class empty or flat): keep the prior labels
    return ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)


def _cut(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The cleaned GrabCut foreground of ``rgb`` (float32 0..255, full size, unfeathered)."""
    height, width = rgb.shape[:2]
    scale = min(1.0, GRABCUT_SIDE / max(height, width))
    sw = max(min(width, 8), round(width * scale))
    sh = max(min(height, 8), round(height * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    small_alpha = None if alpha is None else cv2.resize(alpha, (sw, sh),
                                                        interpolation=cv2.INTER_AREA)
    fg = _grabcut(small, small_alpha)
    k = _odd(min(sw, sh) * 0.02 + 2)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count > 2:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.flatnonzero(areas >= max(4, 0.05 * areas.max())) + 1
        fg = np.isin(labels, keep).astype(np.uint8)
    return cv2.resize(fg * np.float32(255), (width, height), interpolation=cv2.INTER_LINEAR)


def foreground_mask(image: Image.Image) -> Image.Image:
    """GrabCut (colour GMMs + graph cut) on a <=320 px copy, seeded with a centred
    rectangle at 5% margins; an image with transparency is cut within the bounding box of
    its opaque part, transparent pixels sure background. Opened/closed, specks dropped,
    upsampled and feathered. Mode "L", same size, 255 = foreground."""
    rgb, alpha = _split(image)
    if alpha is not None and alpha.min() == 255:
        alpha = None
    height, width = rgb.shape[:2]
    if min(height, width) < 8:
        full = np.full((height, width), 255, np.uint8) if alpha is None else alpha
        return Image.fromarray(full)
    mask = np.zeros((height, width), np.float32)
    if alpha is None:
        mask = _cut(rgb, None)
    else:
        ys, xs = np.nonzero(alpha >= 16)
        if ys.size:
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            if min(y1 - y0, x1 - x0) < 8:
                mask[y0:y1, x0:x1] = 255
            else:
                mask[y0:y1, x0:x1] = _cut(rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1])
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, min(height, width) / 400))
    if alpha is not None:
        mask = np.minimum(mask, alpha)
    return Image.fromarray(np.clip(np.rint(mask), 0, 255).astype(np.uint8))


def remove_background(image: Image.Image) -> Image.Image:
    """The image as RGBA whose alpha is ``foreground_mask`` (GrabCut), same size."""
    rgb, _ = _split(image)
    return _join(rgb, np.array(foreground_mask(image)))


def blur_background(image: Image.Image, strength: int) -> Image.Image:
    """Gaussian blur of the background only (kernel 2*strength+1, strength clamped to
    5..50, foreground excluded from the average so it leaves no halo), the sharp
    ``foreground_mask`` foreground composited over it. Same size, mode RGB."""
    strength = int(min(50, max(5, strength)))
    rgb, _ = _split(image)
    weight = np.asarray(foreground_mask(image), np.float32) / 255.0
    background = 1.0 - weight
    k = 2 * strength + 1
    sigma = k / 6.0
    colour = rgb.astype(np.float32)
    summed = cv2.GaussianBlur(colour * background[..., None], (k, k), sigma)
    norm = cv2.GaussianBlur(background, (k, k), sigma)[..., None]
    blurred = summed / np.maximum(norm, 1e-3)
    hollow = norm[..., 0] <= 1e-3  # no background within reach: plain blur there
    if hollow.any():
        blurred[hollow] = cv2.GaussianBlur(colour, (k, k), sigma)[hollow]
    out = colour * weight[..., None] + blurred * background[..., None]
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))
