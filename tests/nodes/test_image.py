from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from engine.files import FileStore
from nodes.image import (
    Composite,
    Convert,
    Crop,
    Info,
    Load,
    Resize,
    Save,
    Scale,
    Solid,
    ToMask,
)
from tests.nodes.conftest import RunNode

MakeImage = Callable[..., Image.Image]
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(make_image: MakeImage) -> Image.Image:
    """A 4x2 image: left half red, right half blue, bottom-right pixel green."""
    image = make_image(4, 2, RED)
    image.paste(BLUE, (2, 0, 4, 2))
    image.putpixel((3, 1), GREEN)
    return image


def test_solid_makes_an_image_of_one_colour(run_node: RunNode) -> None:
    image = run_node(Solid, width=3, height=2, color="#ff0000")["image"]
    assert image.mode == "RGB" and image.size == (3, 2)
    assert set(image.getdata()) == {RED}


def test_solid_with_alpha_is_rgba(run_node: RunNode) -> None:
    image = run_node(Solid, width=1, height=1, color="#00ff0080")["image"]
    assert image.mode == "RGBA" and image.getpixel((0, 0)) == (0, 255, 0, 128)


def test_solid_bad_colour_is_reported_at_validation_and_run(run_node: RunNode) -> None:
    assert Solid.check({"color": "#zzz"})[0][0] == "color"
    assert Solid.check({"color": "red"}) == []
    with pytest.raises(ValueError, match="'#12' is not a color"):
        run_node(Solid, color="#12")


def test_info_reports_size_and_mode(run_node: RunNode, make_image: MakeImage) -> None:
    ran = run_node(Info, image=make_image(5, 3, 0, "L"))
    assert ran.outputs == {"width": 5, "height": 3, "mode": "L"}


def test_saved_png_reopens_with_the_same_pixels(run_node: RunNode, make_image: MakeImage,
                                                file_store: FileStore) -> None:
    image = quadrants(make_image)
    ran = run_node(Save, image=image)
    file_id = ran["file_id"]
    assert file_id.startswith("f_") and file_id.endswith(".png")
    assert ran.ui == {"images": [{"filename": file_id, "subfolder": "", "type": "output"}]}
    with Image.open(file_store.path(file_id)) as saved:
        assert saved.format == "PNG" and saved.size == (4, 2)
        assert list(saved.convert("RGB").getdata()) == list(image.getdata())


def test_saving_transparent_jpeg_lays_it_over_white(run_node: RunNode, make_image: MakeImage,
                                                    file_store: FileStore) -> None:
    clear = make_image(8, 8, (255, 0, 0, 0), "RGBA")
    file_id = run_node(Save, image=clear, format="JPEG", quality=95)["file_id"]
    assert file_id.endswith(".jpg")
    with Image.open(io.BytesIO(file_store.read(file_id))) as saved:
        assert saved.format == "JPEG" and saved.mode == "RGB"
        assert all(channel >= 250 for channel in saved.getpixel((4, 4)))


def test_saving_webp_keeps_transparency(run_node: RunNode, make_image: MakeImage,
                                        file_store: FileStore) -> None:
    file_id = run_node(Save, image=make_image(4, 4, (0, 0, 255, 0), "RGBA"),
                       format="WEBP", quality=100)["file_id"]
    with Image.open(file_store.path(file_id)) as saved:
        assert saved.format == "WEBP" and saved.getpixel((1, 1))[3] == 0


def test_load_reads_a_file_on_disk(run_node: RunNode, make_image: MakeImage,
                                   input_dir: Path) -> None:
    path = input_dir / "picture.png"
    quadrants(make_image).save(path)
    ran = run_node(Load, path=str(path))
    assert (ran["width"], ran["height"]) == (4, 2)
    assert ran["image"].getpixel((0, 0)) == RED and ran["image"].getpixel((3, 1)) == GREEN


def test_load_reads_a_file_store_id(run_node: RunNode, make_image: MakeImage,
                                    file_store: FileStore) -> None:
    buffer = io.BytesIO()
    make_image(2, 2, BLUE).save(buffer, format="PNG")
    file_id = file_store.save(buffer.getvalue(), ".png")
    assert run_node(Load, path=file_id)["image"].getpixel((1, 1)) == BLUE


def test_load_turns_palette_images_into_rgb(run_node: RunNode, make_image: MakeImage,
                                            input_dir: Path) -> None:
    path = input_dir / "palette.gif"
    make_image(3, 3, RED).convert("P").save(path)
    image = run_node(Load, path=str(path))["image"]
    assert image.mode == "RGB" and image.getpixel((1, 1)) == RED


def test_load_missing_or_broken_files_are_clear_errors(run_node: RunNode,
                                                       input_dir: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        run_node(Load, path=str(input_dir / "nope.png"))
    broken = input_dir / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="is not an image Pillow can read"):
        run_node(Load, path=str(broken))


def test_load_fingerprint_changes_when_the_file_changes(make_image: MakeImage,
                                                        input_dir: Path) -> None:
    path = input_dir / "changing.png"
    make_image(2, 2, RED).save(path)
    before = Load.fingerprint({"path": str(path)})
    make_image(3, 3, RED).save(path)
    assert Load.fingerprint({"path": str(path)}) != before
    assert Load.fingerprint({"path": "f_0123456789abcdef0123.png"}) is None


def test_resized_red_image_stays_red(run_node: RunNode, make_image: MakeImage) -> None:
    image = run_node(Resize, image=make_image(10, 10, RED), width=3, height=7)["image"]
    assert image.size == (3, 7) and set(image.getdata()) == {RED}


def test_resize_fit_keeps_aspect_inside_the_box(run_node: RunNode,
                                                make_image: MakeImage) -> None:
    image = run_node(Resize, image=make_image(400, 200, RED), width=100, height=100,
                     mode="fit")["image"]
    assert image.size == (100, 50)


def test_resize_fill_crops_the_overflow_evenly(run_node: RunNode,
                                               make_image: MakeImage) -> None:
    wide = make_image(6, 2, BLUE)
    wide.paste(RED, (2, 0, 4, 2))  # blue | red | blue
    image = run_node(Resize, image=wide, width=2, height=2, mode="fill",
                     resample="nearest")["image"]
    assert image.size == (2, 2) and set(image.getdata()) == {RED}


def test_scale_multiplies_both_sides(run_node: RunNode, make_image: MakeImage) -> None:
    image = run_node(Scale, image=quadrants(make_image), factor=2.0,
                     resample="nearest")["image"]
    assert image.size == (8, 4)
    assert image.getpixel((0, 0)) == RED and image.getpixel((7, 3)) == GREEN
    assert run_node(Scale, image=make_image(3, 3, RED), factor=0.01)["image"].size == (1, 1)


def test_scale_beyond_the_size_limit_is_refused(run_node: RunNode,
                                                make_image: MakeImage) -> None:
    with pytest.raises(ValueError, match="the limit is 8192 per side"):
        run_node(Scale, image=make_image(1000, 10, RED), factor=10.0)


def test_crop_returns_exactly_the_region(run_node: RunNode, make_image: MakeImage) -> None:
    image = run_node(Crop, image=quadrants(make_image), x=2, y=1, width=2, height=1)["image"]
    assert image.size == (2, 1) and list(image.getdata()) == [BLUE, GREEN]


def test_crop_outside_the_image_names_both_sizes(run_node: RunNode,
                                                 make_image: MakeImage) -> None:
    with pytest.raises(ValueError, match="width=4 height=2 goes outside the 4x2 image"):
        run_node(Crop, image=quadrants(make_image), x=1, y=0, width=4, height=2)


def test_composite_puts_the_overlay_at_x_y(run_node: RunNode, make_image: MakeImage) -> None:
    base = make_image(5, 5, WHITE)
    image = run_node(Composite, base=base, overlay=make_image(2, 2, RED), x=3, y=1)["image"]
    assert image.size == (5, 5)
    red = {(x, y) for x in range(5) for y in range(5) if image.getpixel((x, y)) == RED}
    assert red == {(3, 1), (4, 1), (3, 2), (4, 2)}
    assert base.getpixel((3, 1)) == WHITE  # the input is not changed


def test_composite_clips_an_overlay_hanging_off_the_top_left(run_node: RunNode,
                                                             make_image: MakeImage) -> None:
    image = run_node(Composite, base=make_image(3, 3, WHITE), overlay=make_image(2, 2, RED),
                     x=-1, y=-1)["image"]
    assert image.getpixel((0, 0)) == RED and image.getpixel((1, 1)) == WHITE


def test_composite_uses_the_mask(run_node: RunNode, make_image: MakeImage) -> None:
    mask = make_image(2, 1, 0, "L")
    mask.putpixel((1, 0), 255)
    image = run_node(Composite, base=make_image(2, 1, WHITE), overlay=make_image(2, 1, BLUE),
                     mask=mask)["image"]
    assert list(image.getdata()) == [WHITE, BLUE]


def test_composite_mask_must_match_the_overlay(run_node: RunNode,
                                               make_image: MakeImage) -> None:
    with pytest.raises(ValueError, match="mask is 1x1 but overlay is 2x2"):
        run_node(Composite, base=make_image(4, 4, WHITE), overlay=make_image(2, 2, RED),
                 mask=make_image(1, 1, 255, "L"))


def test_composite_respects_overlay_transparency(run_node: RunNode,
                                                 make_image: MakeImage) -> None:
    overlay = make_image(2, 1, (255, 0, 0, 0), "RGBA")
    overlay.putpixel((1, 0), (255, 0, 0, 255))
    on_rgb = run_node(Composite, base=make_image(2, 1, WHITE), overlay=overlay)["image"]
    assert on_rgb.mode == "RGB" and list(on_rgb.getdata()) == [WHITE, RED]
    half = make_image(1, 1, (0, 0, 255, 128), "RGBA")
    on_rgba = run_node(Composite, base=make_image(1, 1, (255, 255, 255, 255), "RGBA"),
                       overlay=half)["image"]
    red, _, blue, alpha = on_rgba.getpixel((0, 0))
    assert alpha == 255 and 120 <= red <= 135 and blue == 255


def test_convert_changes_the_mode(run_node: RunNode, make_image: MakeImage) -> None:
    grey = run_node(Convert, image=make_image(1, 1, WHITE), mode="L")["image"]
    assert grey.mode == "L" and grey.getpixel((0, 0)) == 255
    rgba = run_node(Convert, image=make_image(1, 1, RED), mode="RGBA")["image"]
    assert rgba.getpixel((0, 0)) == (255, 0, 0, 255)


def test_to_mask_takes_one_channel(run_node: RunNode, make_image: MakeImage) -> None:
    image = make_image(1, 1, (10, 20, 30, 40), "RGBA")
    for channel, expected in [("red", 10), ("green", 20), ("blue", 30), ("alpha", 40)]:
        mask = run_node(ToMask, image=image, channel=channel)["mask"]
        assert mask.mode == "L" and mask.getpixel((0, 0)) == expected
    opaque = run_node(ToMask, image=make_image(2, 2, RED), channel="alpha")["mask"]
    assert set(opaque.getdata()) == {255}


def test_a_16_bit_picture_loads_scaled_not_clipped(run_node: RunNode, input_dir) -> None:
    import numpy as np
    from PIL import Image

    path = input_dir / "deep.png"
    values = np.array([[0, 30000], [65535, 12850]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    loaded = run_node(Load, path=str(path))["image"]
    assert loaded.mode == "L"
    assert list(loaded.getdata()) == [0, 117, 255, 50]


def test_load_reads_nothing_outside_the_readable_folders(run_node: RunNode, make_image: MakeImage,
                                                          input_dir: Path,
                                                          tmp_path: Path) -> None:
    outside = tmp_path / "private.png"
    make_image(2, 2, RED).save(outside)
    escape = input_dir / "escape.png"  # a symlink inside the input folder leading out
    escape.symlink_to(outside)
    climbing = f"{input_dir.name}/../../{outside.relative_to('/')}"
    for path in (str(outside), str(escape), climbing, "/etc/hostname", "~/.bashrc"):
        with pytest.raises(ValueError, match="outside the folders nodes may read"):
            run_node(Load, path=path)
        assert Load.fingerprint({"path": path}) is None  # not even its size is looked at
    inside = input_dir / "inside.png"
    make_image(2, 2, GREEN).save(inside)
    relative = f"{input_dir.name}/inside.png"  # relative paths start in the input folder
    assert run_node(Load, path=relative)["image"].getpixel((0, 0)) == GREEN


def test_load_takes_only_the_picture_formats_every_decoder_takes(run_node: RunNode,
                                                                  make_image: MakeImage,
                                                                  input_dir: Path) -> None:
    for fmt, name in (("ICO", "p.ico"), ("PPM", "p.ppm"), ("TGA", "p.tga")):
        make_image(16, 16, RED).save(input_dir / name, format=fmt)
        with pytest.raises(ValueError, match="PNG, JPEG, WEBP, GIF, BMP or TIFF"):
            run_node(Load, path=str(input_dir / name))
    make_image(16, 16, RED).save(input_dir / "p.bmp", format="BMP")
    assert run_node(Load, path=str(input_dir / "p.bmp"))["image"].getpixel((0, 0)) == RED
