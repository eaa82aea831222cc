"""ComfyUI's picture files: loading from the input folder, ComfyUI's save names and
counters, the ui entries, and the editor's /view serving what was saved."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.files import FileStore
from engine.settings import get_settings
from nodes.comfy.files import (
    LoadImage,
    LoadImageMask,
    PreviewImage,
    SaveAnimatedWEBP,
    SaveImage,
    next_counter,
    png_info,
    webp_exif,
)
from tests.nodes.conftest import RunNode


def write(folder: Path, name: str, picture: Image.Image, **options) -> str:
    """Save ``picture`` in a folder of the input folder; returns its LoadImage name."""
    picture.save(folder / name, **options)
    return f"{folder.name}/{name}"


# -- LoadImage / LoadImageMask ---------------------------------------------------------------

def test_load_image_mask_is_one_minus_alpha(run_node: RunNode, input_dir: Path) -> None:
    picture = Image.new("RGBA", (3, 2), (255, 0, 0, 255))
    picture.putpixel((1, 0), (0, 0, 255, 0))
    picture.putpixel((2, 1), (0, 255, 0, 51))
    ran = run_node(LoadImage, image=write(input_dir, "a.png", picture))
    image, mask = ran["IMAGE"], ran["MASK"]
    assert image.shape == (1, 2, 3, 3) and image.dtype == torch.float32
    assert image[0, 0, 0].tolist() == [1.0, 0.0, 0.0] and image[0, 0, 1].tolist() == [0, 0, 1.0]
    assert mask.shape == (1, 2, 3)
    # row by row: opaque, transparent, opaque; opaque, opaque, alpha 51 → 1 − 0.2
    assert mask.flatten().tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0, 0.0, 0.8], abs=1e-6)


def test_load_image_without_alpha_has_the_64_square_zero_mask(run_node: RunNode,
                                                               input_dir: Path) -> None:
    ran = run_node(LoadImage, image=write(input_dir, "b.jpg", Image.new("RGB", (5, 4), "white")))
    assert ran["IMAGE"].shape == (1, 4, 5, 3)
    assert ran["MASK"].shape == (1, 64, 64) and not ran["MASK"].any()


def test_load_image_palette_transparency_counts(run_node: RunNode, input_dir: Path) -> None:
    picture = Image.new("P", (2, 1), 0)
    picture.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    picture.putpixel((1, 0), 1)
    name = write(input_dir, "p.png", picture, transparency=1)
    assert run_node(LoadImage, image=name)["MASK"].tolist() == [[[0.0, 1.0]]]


def test_load_image_applies_the_exif_orientation(run_node: RunNode, input_dir: Path) -> None:
    picture = Image.new("RGB", (2, 1), (255, 0, 0))
    picture.putpixel((1, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: the left pixel ends on top
    image = run_node(LoadImage, image=write(input_dir, "r.png", picture, exif=exif))["IMAGE"]
    assert image.shape == (1, 2, 1, 3)
    assert image[0, 0, 0].tolist() == [1.0, 0.0, 0.0] and image[0, 1, 0].tolist() == [0, 0, 1.0]


def test_load_image_batches_frames_of_the_first_size(run_node: RunNode,
                                                     input_dir: Path) -> None:
    pages = [Image.new("RGB", (2, 2), (255, 0, 0)), Image.new("RGB", (3, 3), (0, 255, 0)),
             Image.new("RGB", (2, 2), (0, 0, 255))]
    name = write(input_dir, "pages.tiff", pages[0], save_all=True, append_images=pages[1:])
    ran = run_node(LoadImage, image=name)
    assert ran["IMAGE"].shape == (2, 2, 2, 3)  # the 3×3 page is skipped
    assert ran["IMAGE"][1, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert ran["MASK"].shape == (2, 64, 64)


def test_load_image_scales_32_bit_integers_by_1_255(run_node: RunNode, input_dir: Path) -> None:
    name = write(input_dir, "i.tiff", Image.new("I", (1, 1), 510))
    assert run_node(LoadImage, image=name)["IMAGE"][0, 0, 0].tolist() == pytest.approx(
        [2 / 255] * 3)


def test_load_image_fingerprint_is_the_files_sha256(input_dir: Path) -> None:
    name = write(input_dir, "c.png", Image.new("RGB", (1, 1), "red"))
    digest = hashlib.sha256((input_dir / "c.png").read_bytes()).hexdigest()
    assert LoadImage.fingerprint({"image": name}) == digest
    Image.new("RGB", (1, 1), "blue").save(input_dir / "c.png")
    assert LoadImage.fingerprint({"image": name}) != digest
    assert LoadImageMask.fingerprint({"image": name, "channel": "red"}) == hashlib.sha256(
        (input_dir / "c.png").read_bytes()).hexdigest()


def test_load_image_refuses_missing_files_and_paths_out_of_the_folder(
        run_node: RunNode, input_dir: Path) -> None:
    missing = f"{input_dir.name}/nothing.png"
    assert LoadImage.check({"image": missing}) == [("image", f"Invalid image file: {missing}")]
    assert LoadImage.check({"image": "../homepilot.duckdb"})[0][0] == "image"
    with pytest.raises(ValueError, match="Invalid image file"):
        run_node(LoadImage, image="../../etc/passwd")
    with pytest.raises(ValueError, match="Invalid image file"):
        run_node(LoadImage, image=missing)


@pytest.fixture
def output_subfolder() -> Iterator[Path]:
    """A fresh folder in the test home's output folder (the file store's folder)."""
    import shutil

    folder = get_settings().home / "files" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_load_image_output_annotation_reads_the_output_folder(
        run_node: RunNode, output_subfolder: Path) -> None:
    Image.new("RGB", (1, 1), (0, 255, 0)).save(output_subfolder / "o.png")
    image = run_node(LoadImage, image=f"{output_subfolder.name}/o.png [output]")["IMAGE"]
    assert image[0, 0, 0].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize(("channel", "expected"), [
    ("red", 10 / 255), ("green", 20 / 255), ("blue", 30 / 255), ("alpha", 1 - 40 / 255)])
def test_load_image_mask_channels(run_node: RunNode, input_dir: Path, channel,
                                  expected) -> None:
    name = write(input_dir, "m.png", Image.new("RGBA", (2, 3), (10, 20, 30, 40)))
    mask = run_node(LoadImageMask, image=name, channel=channel)["MASK"]
    assert mask.shape == (1, 3, 2) and torch.allclose(mask, torch.tensor(expected), atol=1e-6)


def test_load_image_mask_of_an_opaque_picture_has_zero_alpha_mask(
        run_node: RunNode, input_dir: Path) -> None:
    name = write(input_dir, "o.png", Image.new("RGB", (2, 2), (255, 255, 255)))
    mask = run_node(LoadImageMask, image=name, channel="alpha")["MASK"]
    assert mask.shape == (1, 2, 2) and not mask.any()


# -- SaveImage / PreviewImage ----------------------------------------------------------------

def test_save_image_counter_continues_after_existing_files(run_node: RunNode,
                                                           file_store: FileStore) -> None:
    folder = file_store.root / "sub"
    folder.mkdir(parents=True)
    for existing in ("ComfyUI_00007_.png", "ComfyUI_00003_.webp", "ComfyUI_temp_abcde_00009_.png",
                     "Other_00050_.png", "comfyui_00099_.png"):
        (folder / existing).write_bytes(b"")
    images = torch.full((2, 3, 4, 3), 0.5)
    ran = run_node(SaveImage, images=images, filename_prefix="sub/ComfyUI")
    assert ran.outputs == {}
    assert ran.ui == {"images": [
        {"filename": "ComfyUI_00008_.png", "subfolder": "sub", "type": "output"},
        {"filename": "ComfyUI_00009_.png", "subfolder": "sub", "type": "output"}]}
    with Image.open(folder / "ComfyUI_00008_.png") as saved:
        assert saved.format == "PNG" and saved.size == (4, 3) and saved.mode == "RGB"
        assert saved.getpixel((0, 0)) == (127, 127, 127)  # 0.5·255 = 127.5, truncated
        assert "prompt" not in saved.text  # the engine hands nodes no prompt
    again = run_node(SaveImage, images=images[:1], filename_prefix="sub/ComfyUI")
    assert again.ui["images"][0]["filename"] == "ComfyUI_00010_.png"


def test_next_counter_reads_only_the_base_followed_by_an_underscore(tmp_path: Path) -> None:
    assert next_counter(tmp_path / "absent", "x") == 1
    for name in ("x_00004_.png", "x_notanumber_.png", "xy_00100_.png", "x-00200_.png"):
        (tmp_path / name).write_bytes(b"")
    assert next_counter(tmp_path, "x") == 5


def test_save_image_fills_the_prefix_variables(run_node: RunNode, file_store: FileStore) -> None:
    images = torch.zeros(2, 3, 5, 3)
    ran = run_node(SaveImage, images=images,
                   filename_prefix="%year%/img_%width%x%height%_b%batch_num%")
    year = str(time.localtime().tm_year)
    assert [e["filename"] for e in ran.ui["images"]] == ["img_5x3_b0_00001_.png",
                                                          "img_5x3_b1_00002_.png"]
    assert ran.ui["images"][0]["subfolder"] == year
    assert (file_store.root / year / "img_5x3_b1_00002_.png").is_file()
    stamped = run_node(SaveImage, images=images[:1],
                       filename_prefix="t%month%-%day%_%hour%%minute%%second%")
    assert re.fullmatch(r"t\d\d-\d\d_\d{6}_00001_\.png", stamped.ui["images"][0]["filename"])


@pytest.mark.parametrize("prefix", ["../escape", "/tmp/abs", "sub/../../x"])
def test_save_image_refuses_a_prefix_leaving_the_output_folder(run_node: RunNode,
                                                               prefix: str) -> None:
    with pytest.raises(ValueError, match="outside the output folder"):
        run_node(SaveImage, images=torch.zeros(1, 1, 1, 3), filename_prefix=prefix)


def test_save_image_takes_pil_images(run_node: RunNode, file_store: FileStore) -> None:
    ran = run_node(SaveImage, images=Image.new("RGBA", (2, 2), (1, 2, 3, 4)),
                   filename_prefix="pil")
    with Image.open(file_store.root / ran.ui["images"][0]["filename"]) as saved:
        assert saved.mode == "RGBA" and saved.getpixel((1, 1)) == (1, 2, 3, 4)


def test_png_text_chunks_hold_the_prompt_and_each_extra_key(tmp_path: Path) -> None:
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": 5}}}
    workflow = {"nodes": [{"id": 3}], "links": []}
    Image.new("RGB", (1, 1)).save(tmp_path / "m.png",
                                  pnginfo=png_info(prompt, {"workflow": workflow, "n": 1}))
    with Image.open(tmp_path / "m.png") as saved:
        assert saved.text == {"prompt": json.dumps(prompt), "workflow": json.dumps(workflow),
                              "n": "1"}


def test_preview_image_writes_to_temp(run_node: RunNode, file_store: FileStore) -> None:
    ran = run_node(PreviewImage, images=torch.ones(1, 2, 2, 3))
    (entry,) = ran.ui["images"]
    assert entry["type"] == "temp" and entry["subfolder"] == ""
    assert re.fullmatch(r"ComfyUI_temp_[a-z]{5}_00001_\.png", entry["filename"])
    with Image.open(file_store.root.parent / "temp" / entry["filename"]) as saved:
        assert saved.getpixel((0, 0)) == (255, 255, 255)


# -- SaveAnimatedWEBP ------------------------------------------------------------------------

def test_save_animated_webp_writes_one_file_of_all_frames(run_node: RunNode,
                                                          file_store: FileStore) -> None:
    frames = torch.zeros(3, 4, 4, 3)
    for index in range(3):
        frames[index, ..., index] = 1.0
    ran = run_node(SaveAnimatedWEBP, images=frames, filename_prefix="anim/clip", fps=6.0,
                   lossless=True, quality=80, method="fastest")
    assert ran.ui == {"images": [{"filename": "clip_00001_.webp", "subfolder": "anim",
                                  "type": "output"}], "animated": [True]}
    with Image.open(file_store.root / "anim" / "clip_00001_.webp") as saved:
        assert saved.format == "WEBP" and saved.n_frames == 3
        colours, durations = [], []
        for index in range(3):
            saved.seek(index)
            colours.append(saved.convert("RGB").getpixel((1, 1)))
            durations.append(saved.info["duration"])
    assert colours == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    assert durations == [166] * 3  # int(1000 / 6) ms each
    single = run_node(SaveAnimatedWEBP, images=frames[:1], filename_prefix="anim/clip", fps=2.0,
                      lossless=False, quality=50, method="default")
    assert single.ui["animated"] == [False]
    assert single.ui["images"][0]["filename"] == "clip_00002_.webp"


def test_webp_exif_tags_count_down_from_0x010f() -> None:
    exif = webp_exif(Image.new("RGB", (1, 1)), {"1": {}}, {"workflow": {"a": 1}, "b": [2]})
    assert exif[0x0110] == 'prompt:{"1": {}}'
    assert exif[0x010F] == 'workflow:{"a": 1}' and exif[0x010E] == "b:[2]"


# -- through the engine and the server -------------------------------------------------------

def outpaint_prompt(name: str, prefix: str) -> dict:
    """ComfyUI API format: load, pad for outpainting, save the picture, preview the mask."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ImagePadForOutpaint",
              "inputs": {"image": ["1", 0], "left": 8, "top": 0, "right": 0, "bottom": 0,
                         "feathering": 0}},
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


def test_an_api_prompt_runs_on_the_local_executor(request, registry, _executors,
                                                  input_dir: Path) -> None:
    from engine.loader import graph_from_comfy
    from tests.conftest import session_executor

    executor = session_executor(request, registry, _executors, "local")
    name = write(input_dir, "src.png", Image.new("RGB", (4, 2), (0, 0, 255)))
    sub = uuid.uuid4().hex
    result = executor.run(graph_from_comfy(outpaint_prompt(name, f"{sub}/padded")), timeout=60)
    assert result.status == "success", result.error
    assert result.ui["4"] == {"images": [{"filename": "padded_00001_.png", "subfolder": sub,
                                          "type": "output"}]}
    with Image.open(FileStore.default().root / sub / "padded_00001_.png") as saved:
        pixels = np.asarray(saved)
    assert pixels.shape == (2, 12, 3)
    assert (pixels[:, :8] == 127).all() and (pixels[:, 8:] == [0, 0, 255]).all()
    (preview,) = result.ui["5"]["images"]
    with Image.open(FileStore.default().root.parent / "temp" / preview["filename"]) as mask:
        assert np.asarray(mask.convert("L"))[0].tolist() == [255] * 8 + [0] * 4


def test_the_editor_views_what_save_and_preview_wrote(registry, tmp_path: Path,
                                                      input_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from engine.executors.local import LocalExecutor
    from engine.settings import Settings
    from server.app import create_app

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    executor = LocalExecutor(registry, files=FileStore(home / "files"))
    name = write(input_dir, "src.png", Image.new("RGB", (4, 2), (0, 255, 0)))
    try:
        with TestClient(create_app(Settings(home=home), registry, executor)) as client:
            posted = client.post("/editor/api/prompt",
                                 json={"prompt": outpaint_prompt(name, "out/pad")})
            assert posted.status_code == 200, posted.text
            run_id = posted.json()["prompt_id"]
            client.app.state.homepilot.runs.get(run_id).handle.result(60)
            outputs = client.get(f"/editor/api/history/{run_id}").json()[run_id]["outputs"]
            saved, shown = outputs["4"]["images"][0], outputs["5"]["images"][0]
            assert saved == {"filename": "pad_00001_.png", "subfolder": "out", "type": "output"}
            for entry, folder in ((saved, home / "files" / "out"), (shown, home / "temp")):
                viewed = client.get("/editor/api/view", params=entry)
                assert viewed.status_code == 200 and viewed.headers["content-type"] == "image/png"
                assert viewed.content == (folder / entry["filename"]).read_bytes()
            assert client.get("/editor/api/view", params={**saved, "subfolder": "../.."}
                              ).status_code == 400
            assert client.get("/editor/api/view", params={**shown, "filename": "nothing.png"}
                              ).status_code == 404
    finally:
        executor.close()
