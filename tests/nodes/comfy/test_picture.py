"""ComfyUI's image and mask operations against values worked out by hand from the sheet;
every node takes a PIL image as well as a tensor."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nodes.comfy.mask import ImageToMask, InvertMask, MaskToImage
from nodes.comfy.picture import (
    ImageCompositeMasked,
    ImageInvert,
    ImagePadForOutpaint,
    ImageScale,
    ImageScaleBy,
)
from tests.nodes.conftest import RunNode


def ramp(values: list[float], height: int = 1) -> torch.Tensor:
    """A 1×height×len(values)×3 image whose columns hold ``values`` on every channel."""
    row = torch.tensor(values).reshape(1, 1, -1, 1)
    return row.expand(1, height, len(values), 3).clone()


def scale(run_node: RunNode, image, method: str, width: int, height: int,
          crop: str = "disabled") -> torch.Tensor:
    return run_node(ImageScale, image=image, upscale_method=method, width=width, height=height,
                    crop=crop)["IMAGE"]


# -- ImageScale / ImageScaleBy ----------------------------------------------------------------

def test_image_scale_zero_side_keeps_the_aspect_ratio(run_node: RunNode) -> None:
    image = torch.rand(2, 4, 6, 3)  # H 4, W 6
    assert scale(run_node, image, "bilinear", 0, 2).shape == (2, 2, 3, 3)  # round(6·2/4)
    assert scale(run_node, image, "bilinear", 3, 0).shape == (2, 2, 3, 3)  # round(4·3/6)
    assert scale(run_node, image, "bilinear", 0, 1).shape == (2, 1, 2, 3)  # round(1.5) = 2
    assert scale(run_node, torch.rand(1, 100, 1, 3), "area", 0, 1).shape == (1, 1, 1, 3)
    assert scale(run_node, image, "bilinear", 0, 0) is image


@pytest.mark.parametrize(("method", "expected"), [
    ("nearest-exact", [0.0, 0.0, 1.0, 1.0]),
    # half-pixel centres at x = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    ("bilinear", [0.0, 0.25, 0.75, 1.0]),
])
def test_image_scale_widens_two_pixels_to_four(run_node: RunNode, method, expected) -> None:
    out = scale(run_node, ramp([0.0, 1.0]), method, 4, 1)
    assert out.shape == (1, 1, 4, 3)
    assert out[0, 0, :, 1].tolist() == pytest.approx(expected, abs=1e-6)


def test_image_scale_area_averages(run_node: RunNode) -> None:
    out = scale(run_node, ramp([0.0, 0.5, 1.0, 0.2]), "area", 2, 1)
    assert out[0, 0, :, 0].tolist() == pytest.approx([0.25, 0.6], abs=1e-6)


def test_image_scale_bicubic_and_lanczos_keep_a_flat_picture_flat(run_node: RunNode) -> None:
    flat = torch.full((1, 3, 5, 3), 0.4)
    bicubic = scale(run_node, flat, "bicubic", 7, 2)
    assert bicubic.shape == (1, 2, 7, 3) and torch.allclose(bicubic, torch.tensor(0.4), atol=1e-5)
    lanczos = scale(run_node, flat, "lanczos", 7, 2)
    # through 8 bits: 0.4·255 = 102 (truncated), so every value is 102/255
    assert torch.allclose(lanczos, torch.tensor(102 / 255), atol=1e-6)


def test_image_scale_lanczos_quantises_to_8_bits(run_node: RunNode) -> None:
    out = scale(run_node, torch.rand(1, 5, 5, 3), "lanczos", 9, 4)
    assert out.shape == (1, 4, 9, 3)
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)


def test_image_scale_center_crop(run_node: RunNode) -> None:
    # 4 columns, aspect 4:2 → 1:1 cuts round((4 − 4·½)/2) = 1 column per side
    out = scale(run_node, ramp([0.1, 0.2, 0.3, 0.4], height=2), "nearest-exact", 2, 2, "center")
    assert out[0, 0, :, 0].tolist() == pytest.approx([0.2, 0.3])


def test_image_scale_takes_a_pil_image(run_node: RunNode) -> None:
    out = scale(run_node, Image.new("RGB", (6, 4), (255, 0, 0)), "nearest-exact", 3, 2)
    assert out.shape == (1, 2, 3, 3) and out[0, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_image_scale_by_rounds_each_side(run_node: RunNode) -> None:
    image = torch.rand(1, 4, 6, 3)
    by = run_node(ImageScaleBy, image=image, upscale_method="bilinear", scale_by=0.5)["IMAGE"]
    assert by.shape == (1, 2, 3, 3)
    # 6·1.25 = 7.5 rounds to 8 (Python's round, half to even), 4·1.25 = 5
    by = run_node(ImageScaleBy, image=image, upscale_method="nearest-exact",
                  scale_by=1.25)["IMAGE"]
    assert by.shape == (1, 5, 8, 3)
    with pytest.raises(ValueError, match="at least 1 pixel"):
        run_node(ImageScaleBy, image=image, upscale_method="area", scale_by=0.01)


# -- ImageInvert -------------------------------------------------------------------------

def test_image_invert(run_node: RunNode) -> None:
    out = run_node(ImageInvert, image=ramp([0.0, 0.25, 1.0]))["IMAGE"]
    assert out[0, 0, :, 2].tolist() == pytest.approx([1.0, 0.75, 0.0])
    red = run_node(ImageInvert, image=Image.new("RGB", (1, 1), (255, 0, 0)))["IMAGE"]
    assert red[0, 0, 0].tolist() == [0.0, 1.0, 1.0]


# -- ImagePadForOutpaint ---------------------------------------------------------------------

def pad(run_node: RunNode, image, **margins) -> tuple[torch.Tensor, torch.Tensor]:
    sides = {"left": 0, "top": 0, "right": 0, "bottom": 0, "feathering": 40, **margins}
    ran = run_node(ImagePadForOutpaint, image=image, **sides)
    return ran["IMAGE"], ran["MASK"]


def test_pad_places_the_original_on_grey(run_node: RunNode) -> None:
    image = torch.full((2, 10, 10, 3), 0.2)
    padded, mask = pad(run_node, image, left=8, bottom=8, feathering=0)
    assert padded.shape == (2, 18, 18, 3) and mask.shape == (1, 18, 18)
    assert torch.all(padded[:, :10, 8:] == 0.2)
    assert torch.all(padded[:, :, :8] == 0.5) and torch.all(padded[:, 10:] == 0.5)
    assert torch.all(mask[0, :10, 8:] == 0) and torch.all(mask[0, :, :8] == 1)
    assert torch.all(mask[0, 10:] == 1)


def test_pad_feathering_is_the_square_of_the_distance_ramp(run_node: RunNode) -> None:
    _, mask = pad(run_node, torch.rand(1, 10, 10, 3), left=8, bottom=8, feathering=4)
    inside = mask[0, :10, 8:]  # rows i, columns j of the original
    f = 4
    # left is padded: d = j from the first column, so column 0 is ((4−0)/4)² = 1
    assert inside[0, :5].tolist() == pytest.approx([((f - d) / f) ** 2 for d in range(5)])
    # bottom is padded: d = 10 − i, so the last row is ((4−1)/4)², not 1 (asymmetric)
    assert inside[5:, 9].tolist() == pytest.approx([0, ((f - 4) / f) ** 2, ((f - 3) / f) ** 2,
                                                   ((f - 2) / f) ** 2, ((f - 1) / f) ** 2])
    assert inside[9, 9].item() == pytest.approx(0.5625)
    # the corner takes the nearer side: row 9 (d=1) against column 0 (d=0) → 1
    assert inside[9, 0].item() == 1.0
    # top and right are not padded: no feathering there
    assert inside[0, 9].item() == 0.0 and inside[4, 4].item() == 0.0


def test_pad_feathers_only_when_twice_it_fits(run_node: RunNode) -> None:
    _, mask = pad(run_node, torch.rand(1, 10, 12, 3), left=8, feathering=5)  # 2·5 = H
    assert not mask[0, :, 8:].any()


def test_pad_takes_a_pil_image(run_node: RunNode) -> None:
    padded, mask = pad(run_node, Image.new("RGB", (2, 2), (0, 0, 255)), top=8, feathering=0)
    assert padded.shape == (1, 10, 2, 3) and padded[0, 9, 1].tolist() == [0.0, 0.0, 1.0]
    assert mask[0, :8].all() and not mask[0, 8:].any()


# -- ImageCompositeMasked ---------------------------------------------------------------------

def composite(run_node: RunNode, destination, source, **options) -> torch.Tensor:
    values = {"x": 0, "y": 0, "resize_source": False, **options}
    return run_node(ImageCompositeMasked, destination=destination, source=source,
                    **values)["IMAGE"]


def test_composite_is_clipped_at_the_destination_edge(run_node: RunNode) -> None:
    destination = torch.zeros(1, 4, 4, 3)
    out = composite(run_node, destination, torch.ones(1, 2, 3, 3), x=2, y=3)
    expected = torch.zeros(1, 4, 4, 3)
    expected[0, 3, 2:4] = 1.0  # 2 of 3 columns and 1 of 2 rows fall inside
    assert torch.equal(out, expected) and not destination.any()
    assert torch.equal(composite(run_node, destination, torch.ones(1, 2, 3, 3), x=9, y=0),
                       destination)


def test_composite_mask_is_stretched_to_the_source(run_node: RunNode) -> None:
    destination = torch.full((1, 4, 4, 3), 0.2)
    mask = torch.tensor([[0.0, 1.0]])  # 1×2, bilinear to 2×4: 0, 0.25, 0.75, 1 per row
    out = composite(run_node, destination, torch.ones(1, 2, 4, 3), y=1, mask=mask)
    blended = [0.2 + m * 0.8 for m in (0.0, 0.25, 0.75, 1.0)]
    assert out[0, 1, :, 0].tolist() == pytest.approx(blended)
    assert out[0, 2, :, 1].tolist() == pytest.approx(blended)
    assert torch.all(out[0, 0] == 0.2) and torch.all(out[0, 3] == 0.2)


def test_composite_resizes_and_tiles_the_source(run_node: RunNode) -> None:
    destination = torch.zeros(3, 2, 2, 3)
    source = torch.stack([torch.full((1, 1, 3), 0.3), torch.full((1, 1, 3), 0.6)])
    out = composite(run_node, destination, source, resize_source=True)
    assert out.shape == (3, 2, 2, 3)
    assert [round(out[b].mean().item(), 5) for b in range(3)] == [0.3, 0.6, 0.3]


def test_composite_rgba_source_onto_rgb_drops_the_alpha(run_node: RunNode) -> None:
    source = Image.new("RGBA", (1, 1), (0, 255, 0, 0))
    out = composite(run_node, Image.new("RGB", (2, 1), (255, 0, 0)), source, x=1)
    assert out.shape == (1, 1, 2, 3)
    assert out[0, 0].tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_composite_rgb_source_onto_rgba_counts_as_opaque(run_node: RunNode) -> None:
    destination = torch.zeros(1, 1, 2, 4)
    out = composite(run_node, destination, torch.full((1, 1, 1, 3), 0.5),
                    mask=torch.full((1, 1, 1), 0.5))
    assert out[0, 0, 0].tolist() == pytest.approx([0.25, 0.25, 0.25, 0.5])
    assert out[0, 0, 1].tolist() == [0.0, 0.0, 0.0, 0.0]


# -- masks -----------------------------------------------------------------------------------

def test_image_to_mask_takes_one_channel(run_node: RunNode) -> None:
    image = torch.tensor([0.1, 0.2, 0.3]).expand(2, 3, 4, 3)
    green = run_node(ImageToMask, image=image, channel="green")["MASK"]
    assert green.shape == (2, 3, 4) and torch.allclose(green, torch.tensor(0.2))
    alpha = run_node(ImageToMask, image=Image.new("RGBA", (2, 1), (0, 0, 0, 51)),
                     channel="alpha")["MASK"]
    assert alpha.shape == (1, 1, 2) and alpha[0, 0].tolist() == pytest.approx([0.2, 0.2])
    with pytest.raises(ValueError, match="no alpha channel"):
        run_node(ImageToMask, image=image, channel="alpha")


def test_mask_to_image_repeats_the_mask_on_three_channels(run_node: RunNode) -> None:
    mask = torch.rand(2, 3, 4)
    image = run_node(MaskToImage, mask=mask)["IMAGE"]
    assert image.shape == (2, 3, 4, 3)
    assert all(torch.equal(image[..., c], mask) for c in range(3))
    from_pil = run_node(MaskToImage, mask=Image.new("L", (2, 2), 255))["IMAGE"]
    assert from_pil.shape == (1, 2, 2, 3) and torch.all(from_pil == 1.0)


def test_invert_mask(run_node: RunNode) -> None:
    assert run_node(InvertMask, mask=torch.tensor([[[0.0, 0.25]]]))["MASK"].tolist() == [
        [[1.0, 0.75]]]
    assert run_node(InvertMask, mask=Image.new("L", (1, 1), 255))["MASK"].tolist() == [[[0.0]]]
