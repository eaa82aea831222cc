"""ComfyUI's model upscaling on the upscaler host (its tiling included), loose files in
models/upscale_models, and ImageRemoveBackgroundRembg on our segmentation."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from engine.loader import graph_from_comfy
from engine.models.manifest import ModelManifest
from engine.models.store import ModelStore
from engine.settings import get_settings
from nodes.backends import retouch
from nodes.backends.tiling import ramp, tile_count, tile_starts, tiled_scale
from nodes.backends.upscaler import UpscalerBackend
from nodes.comfy import upscale
from nodes.testpack.install import TINY_UPSCALER
from nodes.testpack.upscaler import build_tiny_upscaler
from server.app import create_app
from tests.server.test_comfy_core import _refused

# The tiled result differs from one whole-picture call only where a tile's cut edge is
# within the net's reach (ComfyUI's scheme blends, it does not crop): on the tiny RRDBNet
# with 48 px tiles and a 16 px overlap, measured at about 2e-4 mean and 2e-2 at worst.
TILED_MEAN_TOLERANCE = 1e-3
TILED_MAX_TOLERANCE = 0.06


def upscale_prompt(image: str, model: str, width: int, height: int, prefix: str) -> dict:
    """HomePilot's upscale workflow (comfyui/workflows/upscale.json) as an API prompt."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {"class_type": "ImageUpscaleWithModel",
              "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "ImageScale",
              "inputs": {"image": ["3", 0], "width": width, "height": height,
                         "upscale_method": "lanczos", "crop": "disabled"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0],
                                                    "filename_prefix": prefix}},
    }


def run_prompt(executor, prompt: dict, events: list | None = None, **outputs: str) -> Any:
    """Run an API prompt; ``outputs`` name node outputs to hand back (``big="3.0"``)."""
    graph = graph_from_comfy(prompt)
    graph = graph.model_copy(update={"outputs": {k: f"${{{v}}}" for k, v in outputs.items()}})
    result = executor.run(graph, {}, timeout=300,
                          listener=events.append if events is not None else None)
    assert result.status == "success", result.error
    return result


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def saved(result: Any, node_id: str) -> Image.Image:
    (entry,) = result.ui[node_id]["images"]
    path = get_settings().home / "files" / entry["subfolder"] / entry["filename"]
    with Image.open(path) as image:
        return image.copy()


@pytest.fixture
def loose_file() -> Iterator[tuple[str, Path]]:
    """A tiny RRDBNet x4 (other weights than the test pack's) as a loose file in the test
    home's models/upscale_models; its LoadImage-style name and path. The manifest a run
    registers for it is removed again: a non-test upscaler would become the default."""
    sub = uuid.uuid4().hex[:8]
    path = build_tiny_upscaler(upscale.folder() / sub / "Tiny_x4.pth", seed=1)
    yield f"{sub}/Tiny_x4.pth", path
    store = ModelStore(get_settings().models_dir)
    for manifest in store.list("upscaler"):
        if Path(manifest.path).is_relative_to(path.parent.resolve()):
            store.remove(manifest.id)
    shutil.rmtree(path.parent)


def backend(path: Path) -> UpscalerBackend:
    manifest = ModelManifest(id="direct", kind="upscaler", format="pth", source="local",
                             path=str(path), backend=upscale.BACKEND)
    return UpscalerBackend(manifest, path, "cpu")


def whole(model: UpscalerBackend, image: torch.Tensor) -> torch.Tensor:
    """The host's result with the picture in one tile."""
    return list(model.upscale_tensor(image, tile=10_000))[-1]["image"]


# -- the tiling --------------------------------------------------------------------------

def test_tiles_start_every_tile_minus_overlap_and_the_last_is_cut_at_the_edge():
    assert tile_starts(512, 512, 32) == [0]
    assert tile_starts(600, 512, 32) == [0, 480]  # the second tile is 120 px
    assert tile_starts(1000, 512, 32) == [0, 480, 960]
    assert tile_count(600, 300, 512, 32) == 2
    assert ramp(6, 2).tolist() == [0.5, 1, 1, 1, 1, 0.5]
    assert ramp(3, 2).tolist() == [0.5, 1, 0.5]  # both ramps meet: multiplied
    assert ramp(4, 4).tolist() == [1, 1, 1, 1]  # no shorter than the feather: no ramp


def test_ramp_blending_gives_a_pixelwise_function_exactly():
    image = torch.rand(1, 3, 37, 41)

    def enlarge(part: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(part, scale_factor=2, mode="nearest").sqrt()

    tiles = tiled_scale(image, enlarge, 16, 4, 2, 3)
    steps = 0
    while True:
        try:
            steps += next(tiles)
        except StopIteration as done:
            result = done.value
            break
    assert steps == tile_count(41, 37, 16, 4) == 4 * 3
    assert torch.allclose(result, enlarge(image), atol=1e-6)


def test_the_host_tiles_like_comfyui_and_stays_close_to_one_call(tmp_path: Path):
    model = backend(build_tiny_upscaler(tmp_path / "tiny.pth"))
    image = torch.rand(2, 60, 70, 3)
    updates = list(model.upscale_tensor(image, tile=48, overlap=16))
    tiled = updates[-1]["image"]
    per_item = tile_count(70, 60, 48, 16)
    assert per_item == 4  # tiles start at 0 and 32 on both sides
    # one progress count over the batch, as ComfyUI's progress bar
    assert [(u["step"], u["total"]) for u in updates[:-1]] == \
        [(step, 2 * per_item) for step in range(1, 2 * per_item + 1)]
    single = whole(model, image)
    assert tiled.shape == single.shape == (2, 240, 280, 3)
    difference = (tiled - single).abs()
    assert difference.mean() < TILED_MEAN_TOLERANCE and difference.max() < TILED_MAX_TOLERANCE
    assert 0 <= tiled.min() and tiled.max() <= 1


def test_an_alpha_channel_is_resized_beside_the_net(tmp_path: Path):
    model = backend(build_tiny_upscaler(tmp_path / "tiny.pth"))
    image = torch.rand(1, 8, 6, 4)
    image[..., 3] = 1.0
    out = whole(model, image)
    assert out.shape == (1, 32, 24, 4)
    assert torch.allclose(out[..., 3], torch.ones(1, 32, 24))
    assert torch.allclose(out[..., :3], whole(model, image[..., :3]))


# -- the workflow ------------------------------------------------------------------------

def test_homepilots_upscale_workflow_runs_on_the_upscaler_host(executor, test_pack,
                                                               input_dir: Path):
    picture(40, 30).save(input_dir / "src.png")
    prompt = upscale_prompt(f"{input_dir.name}/src.png", TINY_UPSCALER, 100, 70,
                            f"{input_dir.name}/up")
    result = run_prompt(executor, prompt, big="3.0", exact="4.0")
    big, exact = result.outputs["big"], result.outputs["exact"]
    assert big.shape == (1, 120, 160, 3) and exact.shape == (1, 70, 100, 3)
    assert 0 <= big.min() and big.max() <= 1 and 0 <= exact.min() and exact.max() <= 1
    # the test pack's net ran on the picture, in one call (it fits one tile)
    source = torch.from_numpy(np.asarray(picture(40, 30), dtype=np.float32) / 255)[None]
    store = ModelStore(get_settings().models_dir)
    weights = store.weights(store.get(TINY_UPSCALER))
    # the host may run torch with another thread count than this process: a tolerance
    assert torch.allclose(big, whole(backend(weights), source), atol=1e-4)
    assert saved(result, "5").size == (100, 70)


def test_a_picture_larger_than_a_tile_is_tiled_on_the_way_through_the_graph(
        request, registry, _executors, test_pack, input_dir: Path,
        monkeypatch: pytest.MonkeyPatch):
    from tests.conftest import session_executor

    executor = session_executor(request, registry, _executors, "local")
    executor.clear_cache()
    picture(70, 60, seed=2).save(input_dir / "src.png")
    prompt = upscale_prompt(f"{input_dir.name}/src.png", TINY_UPSCALER, 0, 0,
                            f"{input_dir.name}/t")
    one_call = run_prompt(executor, prompt, big="3.0").outputs["big"]
    executor.clear_cache()
    monkeypatch.setattr(upscale, "TILE", 48)  # the node reads these as it runs
    monkeypatch.setattr(upscale, "OVERLAP", 16)
    events: list = []
    tiled = run_prompt(executor, prompt, events, big="3.0").outputs["big"]
    assert [(e.data["value"], e.data["max"]) for e in events
            if e.type == "node_progress" and e.node_id == "3"] == [(1, 4), (2, 4), (3, 4),
                                                                   (4, 4)]
    assert tiled.shape == one_call.shape == (1, 240, 280, 3)
    difference = (tiled - one_call).abs()
    assert 0 < difference.max() < TILED_MAX_TOLERANCE
    assert difference.mean() < TILED_MEAN_TOLERANCE


def test_a_loose_file_in_upscale_models_loads_through_the_same_host(
        executor, test_pack, input_dir: Path, loose_file: tuple[str, Path]):
    name, path = loose_file
    picture(24, 20).save(input_dir / "src.png")
    image = f"{input_dir.name}/src.png"
    result = run_prompt(executor, upscale_prompt(image, name, 48, 40, f"{input_dir.name}/f"),
                        big="3.0")
    big = result.outputs["big"]
    source = torch.from_numpy(np.asarray(picture(24, 20), dtype=np.float32) / 255)[None]
    assert torch.allclose(big, whole(backend(path), source), atol=1e-4)  # its weights
    store = ModelStore(get_settings().models_dir)
    (manifest,) = [m for m in store.list("upscaler") if m.path == str(path.resolve())]
    assert manifest.id == f"upscale-models-{name.lower().replace('/', '-')}"
    assert manifest.backend == upscale.BACKEND and manifest.source.startswith("folder:")
    # named by its id from then on: the same model, registered once
    executor.clear_cache()
    again = run_prompt(executor, upscale_prompt(image, manifest.id, 48, 40,
                                                f"{input_dir.name}/g"), big="3.0")
    assert torch.equal(again.outputs["big"], big)
    assert len([m for m in store.list("upscaler") if m.path == manifest.path]) == 1


def test_names_are_checked_against_the_store_and_the_folder(test_pack,
                                                            loose_file: tuple[str, Path]):
    name, _ = loose_file
    check = upscale.UpscaleModelLoader.check
    assert check({"model_name": TINY_UPSCALER}) == [] and check({"model_name": name}) == []
    for bad in ("nope.pth", "../" + name, name.replace(".pth", ".txt"),
                "test-sd-tiny"):  # a diffusion model is not an upscaler
        ((field, message),) = check({"model_name": bad})
        assert field == "model_name" and f"{bad!r} not in" in message and name in message


def test_files_whose_names_give_one_id_get_their_paths_hash_added(
        loose_file: tuple[str, Path]):
    name, path = loose_file
    other = path.with_name("tiny_X4.pth")
    shutil.copyfile(path, other)
    first = upscale.register_file(upscale.folder_file(name))
    second = upscale.register_file(upscale.folder_file(name.replace("Tiny_x4", "tiny_X4")))
    assert first == f"upscale-models-{name.lower().replace('/', '-')}"
    assert second.startswith(first + "-") and len(second) == len(first) + 9
    assert upscale.register_file(upscale.folder_file(name)) == first  # found again


# -- through ComfyUI's API -----------------------------------------------------------------

@pytest.fixture
def client(registry, executor, test_pack):
    with TestClient(create_app(get_settings(), registry, executor)) as client:
        yield client


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_an_unknown_model_name_is_refused_in_node_errors(client, input_dir: Path):
    picture(8, 8).save(input_dir / "src.png")
    prompt = upscale_prompt(f"{input_dir.name}/src.png", "4x-Nope.pth", 32, 32, "x")
    body = _refused(client, prompt)
    assert list(body["node_errors"]) == ["2"]
    (error,) = body["node_errors"]["2"]["errors"]
    assert error["extra_info"]["input_name"] == "model_name"
    assert "'4x-Nope.pth' not in" in error["details"] and TINY_UPSCALER in error["details"]
    assert body["node_errors"]["2"]["class_type"] == "UpscaleModelLoader"


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_object_info_lists_installed_upscalers_and_the_folders_files(
        client, loose_file: tuple[str, Path]):
    name, path = loose_file
    (path.parent / "notes.txt").write_text("not weights")
    info = client.get("/object_info").json()
    loader = info["UpscaleModelLoader"]
    assert (loader["category"], loader["display_name"], loader["output"]) == \
        ("loaders", "Load Upscale Model", ["UPSCALE_MODEL"])
    listed = loader["input"]["required"]["model_name"][0]
    assert TINY_UPSCALER in listed and name in listed
    assert not any(entry.endswith("notes.txt") for entry in listed)
    upscaler = info["ImageUpscaleWithModel"]
    assert (upscaler["category"], upscaler["display_name"]) == \
        ("image/upscaling", "Upscale Image (using Model)")
    assert upscaler["input_order"]["required"] == ["upscale_model", "image"]
    rembg = info["ImageRemoveBackgroundRembg"]
    assert (rembg["category"], rembg["input_order"]["required"], rembg["output"]) == \
        ("image", ["image"], ["IMAGE"])


# -- background ----------------------------------------------------------------------------

def subject_picture() -> Image.Image:
    """A red square in the middle of a noisy grey-blue background."""
    rng = np.random.default_rng(5)
    pixels = np.clip(rng.normal((90, 110, 140), 8, (96, 96, 3)), 0, 255).astype(np.uint8)
    pixels[30:66, 30:66] = (220, 40, 30)
    return Image.fromarray(pixels)


def test_rembg_cuts_the_subject_out_with_our_segmentation(executor, input_dir: Path):
    subject_picture().save(input_dir / "subject.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": f"{input_dir.name}/subject.png"}},
        "2": {"class_type": "ImageRemoveBackgroundRembg", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "ImageToMask", "inputs": {"image": ["2", 0], "channel": "alpha"}},
        "4": {"class_type": "InvertMask", "inputs": {"mask": ["3", 0]}},
    }
    result = run_prompt(executor, prompt, cut="2.0", background="4.0")
    cut, background = result.outputs["cut"], result.outputs["background"]
    assert cut.shape == (1, 96, 96, 4) and background.shape == (1, 96, 96)
    source = np.asarray(subject_picture(), dtype=np.float32) / 255
    assert np.allclose(cut[0, ..., :3].numpy(), source)  # the colours are kept
    alpha = cut[0, ..., 3].numpy()
    expected = np.asarray(retouch.foreground_mask(subject_picture()), np.float32) / 255
    assert np.allclose(alpha, expected, atol=1 / 255)
    assert alpha[36:60, 36:60].min() > 0.9  # the subject
    assert alpha[:20].max() < 0.1 and alpha[76:].max() < 0.1  # the background
    assert torch.allclose(background, 1 - cut[..., 3])
