"""ComfyUI's tiled upscale: overlapping tiles blended with linear ramps.

Unlike ``UpscalerBackend.upscale`` (which keeps only each tile's centre), every tile's whole
output is accumulated, weighted by a ramp that rises over the overlap on all four edges,
and the sum is divided by the summed weights. ComfyUI's ImageUpscaleWithModel works this
way (tile 512, overlap 32), so the same picture gives the same seams here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import torch

TileFunction = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where tiles start along one side: 0, tile − overlap, … while below size − overlap;
    one tile when the side fits. The last tile is cut at the edge (shorter, not moved)."""
    if size <= tile:
        return [0]
    if tile <= overlap:
        raise ValueError(f"a tile ({tile}) must be larger than its overlap ({overlap})")
    return list(range(0, size - overlap, tile - overlap))


def tile_count(width: int, height: int, tile: int, overlap: int) -> int:
    """How many calls one picture takes (ComfyUI's get_tiled_scale_steps)."""
    return len(tile_starts(width, tile, overlap)) * len(tile_starts(height, tile, overlap))


def ramp(length: int, feather: int) -> torch.Tensor:
    """Weights along one side of a tile: (t+1)/feather over the first and last ``feather``
    entries (multiplied where both ramps meet), none when the tile is not longer."""
    weights = torch.ones(length)
    if 0 < feather < length:
        rising = torch.arange(1, feather + 1, dtype=torch.float32) / feather
        weights[:feather] *= rising
        weights[length - feather:] *= rising.flip(0)
    return weights


def tiled_scale(image: torch.Tensor, function: TileFunction, tile: int, overlap: int,
                scale: int, out_channels: int) -> Generator[int, None, torch.Tensor]:
    """Upscale a 1×C×H×W picture ``scale`` times through ``function`` in tiles.

    Yields once per tile (for progress) and returns the 1×out_channels×(H·s)×(W·s) float32
    result on the CPU. A picture that fits one tile takes one call, unblended.
    """
    height, width = image.shape[-2:]
    if height <= tile and width <= tile:
        result = function(image).float().cpu()
        yield 1
        return result
    size = (image.shape[0], out_channels, height * scale, width * scale)
    total, weight = torch.zeros(size), torch.zeros(size)
    feather = round(overlap * scale)
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            part = image[..., top:top + min(tile, height - top),
                         left:left + min(tile, width - left)]
            out = function(part).float().cpu()
            rows, cols = out.shape[-2:]
            mask = ramp(rows, feather)[:, None] * ramp(cols, feather)[None, :]
            y, x = top * scale, left * scale
            total[..., y:y + rows, x:x + cols] += out * mask
            weight[..., y:y + rows, x:x + cols] += mask
            yield 1
    return total / weight


def run_tiles(image: torch.Tensor, function: TileFunction, tile: int, overlap: int,
              scale: int, out_channels: int, item: int = 0, items: int = 1,
              min_tile: int = 128) -> Generator[dict[str, Any], None, torch.Tensor]:
    """``tiled_scale`` with ComfyUI's out-of-memory retry: the tile side is halved (not
    below ``min_tile``) and the picture started again. Yields ``{"step", "total"}``
    counted over a batch of ``items`` pictures of this size, this one at index ``item``
    (ComfyUI's one progress bar for the batch)."""
    while True:
        count = tile_count(image.shape[-1], image.shape[-2], tile, overlap)
        try:
            tiles = tiled_scale(image, function, tile, overlap, scale, out_channels)
            step = item * count
            while True:
                try:
                    step += next(tiles)
                except StopIteration as done:
                    return done.value
                yield {"step": step, "total": items * count}
        except torch.cuda.OutOfMemoryError:
            tile //= 2
            if tile < min_tile:
                raise
            torch.cuda.empty_cache()
