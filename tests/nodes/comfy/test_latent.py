"""ComfyUI's latent nodes against values worked out by hand from the facts sheet."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from nodes.comfy.latent import (
    EmptyLatentImage,
    EmptySD3LatentImage,
    LatentUpscale,
    SetLatentNoiseMask,
    upscale_target,
)
from nodes.comfy.resample import bislerp
from tests.nodes.conftest import RunNode


def test_empty_latent_is_zeros_on_the_floor_divided_grid(run_node: RunNode) -> None:
    latent = run_node(EmptyLatentImage, width=100, height=64, batch_size=2)["LATENT"]
    assert set(latent) == {"samples"}
    samples = latent["samples"]
    assert samples.shape == (2, 4, 8, 12) and samples.dtype == torch.float32
    assert not samples.any()


def test_empty_sd3_latent_has_16_channels_and_1024_defaults(run_node: RunNode) -> None:
    samples = run_node(EmptySD3LatentImage, width=1024, height=1024, batch_size=1)["LATENT"][
        "samples"]
    assert samples.shape == (1, 16, 128, 128) and not samples.any()
    spec = {i.name: i for i in EmptySD3LatentImage.__node_def__.spec.inputs}
    assert (spec["width"].default, spec["width"].step, spec["width"].min) == (1024, 16, 16)


@pytest.mark.parametrize(("asked", "latent_size", "target"), [
    ((0, 0), (8, 4), None),                # both 0: pass through
    ((0, 100), (8, 4), (200, 100)),        # width follows: round(8·100/4)
    ((0, 16), (8, 4), (128, 64)),          # height clamped to 64 first, then width 128
    ((30, 0), (8, 4), (64, 64)),           # width → 64, height round(4·64/8) = 32 → 64
    ((300, 0), (6, 4), (300, 200)),        # height = round(4·300/6)
    ((16, 520), (8, 8), (64, 520)),        # both given: each at least 64
])
def test_upscale_target_follows_the_zero_side_rules(asked, latent_size, target) -> None:
    assert upscale_target(*asked, *latent_size) == target


def test_latent_upscale_shapes_and_passthrough(run_node: RunNode) -> None:
    samples = torch.randn(1, 4, 4, 8)
    source = {"samples": samples, "batch_index": [3]}
    same = run_node(LatentUpscale, samples=source, upscale_method="nearest-exact", width=0,
                    height=0, crop="disabled")["LATENT"]
    assert same is source
    wide = run_node(LatentUpscale, samples=source, upscale_method="bilinear", width=0,
                    height=100, crop="disabled")["LATENT"]
    # height 100 → 100//8 = 12 rows; width round(8·100/4) = 200 → 25 columns
    assert wide["samples"].shape == (1, 4, 12, 25) and wide["batch_index"] == [3]
    assert source["samples"] is samples and set(source) == {"samples", "batch_index"}


def test_latent_upscale_keeps_the_noise_mask_unresized(run_node: RunNode) -> None:
    mask = torch.rand(1, 1, 32, 64)
    out = run_node(LatentUpscale, samples={"samples": torch.zeros(1, 4, 4, 8), "noise_mask": mask},
                   upscale_method="area", width=128, height=128, crop="disabled")["LATENT"]
    assert out["samples"].shape == (1, 4, 16, 16) and out["noise_mask"] is mask


def test_latent_upscale_nearest_exact_repeats_each_cell(run_node: RunNode) -> None:
    samples = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    out = run_node(LatentUpscale, samples={"samples": samples}, upscale_method="nearest-exact",
                   width=64, height=64, crop="disabled")["LATENT"]["samples"]
    assert out.shape == (1, 1, 8, 8)
    expected = samples.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    assert torch.equal(out, expected)


def test_latent_upscale_center_crop_cuts_the_sides_to_the_new_aspect(run_node: RunNode) -> None:
    # 8 columns numbered 0..7, 4 rows: aspect 2 → 1 cuts round((8 − 8·½)/2) = 2 per side.
    samples = torch.arange(8.0).repeat(4, 1).reshape(1, 1, 4, 8)
    out = run_node(LatentUpscale, samples={"samples": samples}, upscale_method="nearest-exact",
                   width=64, height=64, crop="center")["LATENT"]["samples"]
    assert out.shape == (1, 1, 8, 8)
    assert out[0, 0, 0].tolist() == [2, 2, 3, 3, 4, 4, 5, 5]


def test_bislerp_slerps_directions_and_lerps_lengths() -> None:
    # Two pixels, channel vectors (1, 0) and (0, 2), widened to 4: the sample points fall
    # at source x = 0, 0.25, 0.75, 1 (half-pixel centres, clamped at the edges).
    samples = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # 1×2×1×2 (N, C, H, W)
    out = bislerp(samples, 4, 1)[0, :, 0].T  # 4 vectors of 2 channels

    def expected(r: float) -> list[float]:
        length = 1.0 * (1 - r) + 2.0 * r  # lengths lerp; 90° apart, so sin weights
        return [math.sin((1 - r) * math.pi / 2) * length, math.sin(r * math.pi / 2) * length]

    for column, r in enumerate([0.0, 0.25, 0.75, 1.0]):
        assert out[column].tolist() == pytest.approx(expected(r), abs=1e-5)


def test_bislerp_node_keeps_a_constant_latent_and_zeros(run_node: RunNode) -> None:
    vector = torch.tensor([0.5, -1.0, 2.0, 0.25])
    samples = vector.reshape(1, 4, 1, 1).expand(2, 4, 3, 5).clone()
    samples[1] = 0.0
    out = run_node(LatentUpscale, samples={"samples": samples}, upscale_method="bislerp",
                   width=96, height=64, crop="disabled")["LATENT"]["samples"]
    assert out.shape == (2, 4, 8, 12)
    assert torch.allclose(out[0], vector.reshape(4, 1, 1).expand(4, 8, 12), atol=1e-6)
    assert not out[1].any()


def test_set_latent_noise_mask_reshapes_without_resizing(run_node: RunNode) -> None:
    samples = torch.zeros(2, 4, 8, 8)
    mask = torch.rand(2, 40, 24)
    out = run_node(SetLatentNoiseMask, samples={"samples": samples}, mask=mask)["LATENT"]
    assert out["samples"] is samples
    assert out["noise_mask"].shape == (2, 1, 40, 24)
    assert torch.equal(out["noise_mask"][:, 0], mask)


def test_set_latent_noise_mask_takes_a_pil_mask(run_node: RunNode) -> None:
    mask = Image.new("L", (3, 2), 0)
    mask.putpixel((2, 1), 255)
    source = {"samples": torch.zeros(1, 4, 1, 1)}
    out = run_node(SetLatentNoiseMask, samples=source, mask=mask)["LATENT"]
    assert out["noise_mask"].shape == (1, 1, 2, 3)
    assert out["noise_mask"][0, 0].tolist() == [[0, 0, 0], [0, 0, 1.0]]
    assert "noise_mask" not in source
