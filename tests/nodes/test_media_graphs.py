"""The media feature graphs (edit, inpaint, outpaint, upscale, enhance, background,
animate) with the test pack, on both executors: sizes, kept pixels, alpha, frames."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.files import FileStore
from engine.loader import load_graph
from engine.settings import get_settings
from nodes.testpack.install import TINY_INPAINT, TINY_SD, TINY_UPSCALER

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


def files() -> FileStore:
    return FileStore(get_settings().home / "files")


def store_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return files().save(buffer.getvalue(), ".png")


def pixels(file_id: str) -> np.ndarray:
    with Image.open(files().path(file_id)) as image:
        return np.asarray(image.convert("RGBA" if image.mode == "RGBA" else "RGB"))


def picture(width: int = 64, height: int = 48) -> Image.Image:
    """A textured test picture: gradients plus a bright square in the middle."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1)
    rgb[height // 3:2 * height // 3, width // 3:2 * width // 3] = (250, 240, 20)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def run(executor, name: str, **inputs):
    result = executor.run(load_graph(GRAPHS / f"{name}.yaml"), inputs, timeout=300)
    assert result.status == "success", result.error
    return result.outputs


def test_edit_redraws_the_picture_at_its_size_and_its_seed_repeats_it(executor, test_pack):
    source = store_png(picture())
    first = run(executor, "edit", image=source, prompt="a blue sky", steps=4, seed=7)
    (edited,) = first["files"]
    assert pixels(edited).shape == (48, 64, 3) and first["model"] == TINY_SD
    assert not np.array_equal(pixels(edited), pixels(source))
    again = run(executor, "edit", image=source, prompt="a blue sky", steps=4, seed=7)
    assert np.abs(pixels(again["files"][0]).astype(int) - pixels(edited)).max() <= 1


def test_inpaint_changes_only_the_masked_pixels(executor, test_pack):
    source = store_png(picture())
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (16, 16, 48, 40))
    out = run(executor, "inpaint", image=source, mask=store_png(mask.convert("RGB")),
              prompt="a red fox", steps=3, seed=3)
    assert out["model"] == TINY_INPAINT  # the dedicated inpainting model is preferred
    before, after = pixels(source).astype(int), pixels(out["files"][0]).astype(int)
    outside = np.asarray(mask) == 0
    assert np.abs(after[outside] - before[outside]).max() <= 1
    assert np.abs(after[~outside] - before[~outside]).mean() > 5


@pytest.mark.parametrize("model", ["", "classic"])
def test_outpaint_right_widens_and_keeps_the_original(executor, test_pack, model):
    source = store_png(picture())
    out = run(executor, "outpaint", image=source, right=64, seed=5, model=model)
    result = pixels(out["file"])
    assert result.shape == (48, 128, 3)
    assert np.array_equal(result[:, :64], pixels(source))
    assert out["method"] == ("classic:opencv-telea" if model else f"diffusion:{TINY_INPAINT}")
    assert result[:, 64:].std() > 1  # the new area is painted, not left flat


@pytest.mark.parametrize("model", ["", "lanczos"])
def test_upscale_x2_doubles_both_sides(executor, test_pack, model):
    source = store_png(picture(40, 24))
    out = run(executor, "upscale", image=source, scale=2.0, model=model)
    assert pixels(out["file"]).shape == (48, 80, 3)
    assert out["learned"] is (model == "")
    assert out["method"] == (TINY_UPSCALER if model == "" else "classic:lanczos+sharpen")


def test_background_remove_yields_an_alpha_channel(executor, test_pack):
    out = run(executor, "background", image=store_png(picture()), action="remove")
    result = pixels(out["file"])
    assert result.shape == (48, 64, 4) and out["has_alpha"] is True
    alpha = result[..., 3]
    assert alpha.min() < 128 < alpha.max()  # some of it is cut away, some kept
    assert alpha[24, 32] > 128  # the subject in the middle stays


def test_enhance_photo_keeps_the_size_and_changes_the_pixels(executor, test_pack):
    source = store_png(picture())
    out = run(executor, "enhance", image=source, mode="photo", scale=1)
    assert pixels(out["file"]).shape == (48, 64, 3)
    assert out["method"] == "classic:photo"
    assert not np.array_equal(pixels(out["file"]), pixels(source))


def test_animate_makes_an_mp4_with_the_frames_asked(executor, test_pack):
    from nodes.backends.videofile import probe_video
    from nodes.testpack.install import TINY_VIDEO

    source = store_png(picture())
    out = run(executor, "animate", image=source, frames=5, fps=8, width=64, height=48,
              steps=2, seed=3)
    assert out["renderer"] == TINY_VIDEO and out["seed"] == 3
    info = probe_video(files().read(out["video"]))  # decodes every frame with ffmpeg
    assert (info.frames, info.width, info.height, info.fps) == (5, 64, 48, 8.0)
    with Image.open(files().path(out["webp"])) as webp:
        assert webp.n_frames == 5


def test_an_edit_with_no_denoising_step_is_refused_before_it_runs(executor, test_pack):
    from engine.errors import GraphValidationError

    with pytest.raises(GraphValidationError) as raised:
        executor.run(load_graph(GRAPHS / "edit.yaml"), {
            "image": store_png(picture()), "prompt": "x", "steps": 4, "denoise": 0.2},
            timeout=60)
    assert any(i.input == "denoise" for i in raised.value.issues)
