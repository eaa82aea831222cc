"""Image upscalers (ESRGAN / Real-ESRGAN family) from one weights file, run in tiles.

Tiling keeps memory bounded on large images: each tile is run with ``overlap`` pixels of
real neighbouring context on every side and only its centre is kept, so seams match the
untiled result as long as the overlap covers most of the net's receptive field.
Everything runs on the model host's worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.models.manifest import ModelManifest
from nodes.backends.srnet import load_sr_file

Box = tuple[int, int, int, int]  # left, top, right, bottom in input pixels


class UpscalerBackend:
    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # a logical GPU from Ray without CUDA in this torch build
        model = load_sr_file(Path(weights))
        # fp16 halves memory and is how Real-ESRGAN runs on GPUs; a manifest can opt out
        # for checkpoints that overflow in half precision.
        half = device == "cuda" and bool(manifest.options.get("half", True))
        self.dtype = torch.float16 if half else torch.float32
        self.module = model.module.to(device=device, dtype=self.dtype).eval()
        self.device = device
        self.scale = model.scale
        self.arch = model.arch
        self.in_channels = model.in_channels
        self.out_channels = model.out_channels
        self.memory_bytes = manifest.resources.memory or sum(
            p.numel() * p.element_size() for p in self.module.parameters())

    # -- what the model host calls -----------------------------------------------------

    def native_scale(self) -> int:
        """How many times one pass enlarges each side."""
        return self.scale

    def upscale(self, image: Image.Image, tile: int = 256,
                overlap: int = 16) -> Iterator[dict[str, Any]]:
        """Streams ``{"tile", "total"}`` after each tile, then ``{"image", "scale",
        "arch"}``: the image at the model's native scale, RGBA when the input had alpha
        (the alpha channel is resized with Lanczos, not by the net)."""
        alpha = _alpha(image)
        pixels = _to_tensor(image.convert("L" if self.in_channels == 1 else "RGB"))
        height, width = pixels.shape[-2:]
        boxes = tile_boxes(width, height, tile)
        output: torch.Tensor | None = None
        for index, box in enumerate(boxes, start=1):
            part = self._run_tile(pixels, box, max(overlap, 0))
            if output is None:  # allocated once the net's output channels are known
                # uint8, not float: a 4096 px result is 50 MB this way, 200 MB as floats
                output = torch.empty(1, part.shape[1], height * self.scale,
                                     width * self.scale, dtype=torch.uint8)
            left, top, right, bottom = (side * self.scale for side in box)
            output[..., top:bottom, left:right] = (part.clamp(0, 1) * 255.0).round().to(
                torch.uint8)
            yield {"tile": index, "total": len(boxes)}
        assert output is not None  # tile_boxes always gives at least one box
        result = _to_image(output).convert("RGB")
        if alpha is not None:
            result.putalpha(alpha.resize(result.size, Image.Resampling.LANCZOS))
        yield {"image": result, "scale": self.scale, "arch": self.arch}

    def upscale_tensor(self, image: torch.Tensor, tile: int = 512,
                       overlap: int = 32) -> Iterator[dict[str, Any]]:
        """ComfyUI's ImageUpscaleWithModel on an IMAGE tensor (B×H×W×C, 0..1): each item
        in ramp-blended tiles (``nodes.backends.tiling``). Streams ``{"step", "total"}``
        per tile, then ``{"image"}``: float32 B×(H·s)×(W·s)×C clamped to 0..1. A fourth
        (alpha) channel beside an RGB net is resized bicubically, not by the net."""
        from nodes.backends.tiling import run_tiles

        channels = image.shape[-1]
        if channels != self.in_channels and not (channels == 4 and self.in_channels == 3):
            raise ValueError(f"this upscaler takes {self.in_channels}-channel pictures, "
                             f"not {channels}-channel ones")
        pixels = image.float().movedim(-1, 1)  # B×C×H×W, as the net takes it
        items = []
        for index in range(pixels.shape[0]):
            colour = pixels[index:index + 1, :self.in_channels]
            out = yield from run_tiles(colour, self._run_whole, tile, overlap, self.scale,
                                       self.out_channels, index, pixels.shape[0])
            if channels == 4:
                alpha = torch.nn.functional.interpolate(
                    pixels[index:index + 1, 3:], size=out.shape[-2:], mode="bicubic")
                out = torch.cat([out, alpha], dim=1)
            items.append(out.clamp(0, 1))
        yield {"image": torch.cat(items).movedim(1, -1), "scale": self.scale}

    # -- tiles -------------------------------------------------------------------------

    def _run_whole(self, part: torch.Tensor) -> torch.Tensor:
        """The net on one 1×C×H×W input, as float32 on the CPU."""
        with torch.inference_mode():  # per call: see _run_tile
            return self.module(part.to(device=self.device, dtype=self.dtype)).float().cpu()

    def _run_tile(self, pixels: torch.Tensor, box: Box, overlap: int) -> torch.Tensor:
        """Run the net on ``box`` grown by ``overlap`` (clipped to the image) and return
        the upscaled centre that corresponds to ``box`` alone."""
        height, width = pixels.shape[-2:]
        left, top, right, bottom = box
        ctx_left, ctx_top = max(left - overlap, 0), max(top - overlap, 0)
        ctx_right, ctx_bottom = min(right + overlap, width), min(bottom + overlap, height)
        part = pixels[..., ctx_top:ctx_bottom, ctx_left:ctx_right]
        # inference_mode per call, not around the generator: it is thread-local state and
        # must not stay switched on while the consumer runs between yields.
        with torch.inference_mode():
            out = self.module(part.to(device=self.device, dtype=self.dtype))
        out = out.float().cpu()
        s = self.scale
        return out[..., (top - ctx_top) * s:(bottom - ctx_top) * s,
                   (left - ctx_left) * s:(right - ctx_left) * s]


def tile_boxes(width: int, height: int, tile: int) -> list[Box]:
    """Cover the image with ``tile``-sized boxes (smaller at the right/bottom edges);
    ``tile`` <= 0 means one box for the whole image."""
    if tile <= 0:
        return [(0, 0, width, height)]
    return [(left, top, min(left + tile, width), min(top + tile, height))
            for top in range(0, height, tile) for left in range(0, width, tile)]


def _alpha(image: Image.Image) -> Image.Image | None:
    has_alpha = "A" in image.getbands() or (
        image.mode == "P" and "transparency" in image.info)
    return image.convert("RGBA").getchannel("A") if has_alpha else None


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL (L or RGB) to a 1xCxHxW float tensor in [0, 1]."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def _to_image(tensor: torch.Tensor) -> Image.Image:
    """A 1xCxHxW tensor, uint8 or float in [0, 1], as a PIL image (L or RGB)."""
    if tensor.dtype != torch.uint8:
        tensor = (tensor.clamp(0, 1) * 255.0).round().to(torch.uint8)
    array = tensor[0].numpy()
    if array.shape[0] == 1:
        return Image.fromarray(array[0])
    return Image.fromarray(np.ascontiguousarray(array[:3].transpose(1, 2, 0)))
