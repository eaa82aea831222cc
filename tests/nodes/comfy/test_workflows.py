"""HomePilot's ComfyUI workflows (graphs/comfy/*.json, {{placeholders}} filled as inputs)
run unchanged on both executors with the test pack's checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.files import FileStore
from engine.loader import graph_from_comfy, load_graph
from engine.settings import get_settings
from nodes.testpack.install import TINY_CHECKPOINT, TINY_INPAINT

WORKFLOWS = Path(__file__).resolve().parents[3] / "graphs" / "comfy"


def picture(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A smooth, seeded test picture (gradients and a disc), RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([x / size[0], y / size[1], 0.5 + 0.5 * np.sin(x / 7.0)], -1)
    disc = ((x - size[0] / 2) ** 2 + (y - size[1] / 2) ** 2) < (min(size) / 4) ** 2
    base[disc] = rng.random(3)
    return Image.fromarray((base * 255).astype(np.uint8), "RGB")


def put(folder: Path, name: str, image: Image.Image) -> str:
    image.save(folder / name)
    return f"{folder.name}/{name}"


def run(executor, name: str, outputs: dict[str, str] | None = None,
        **inputs) -> tuple[object, list]:
    """Run a workflow file; ``outputs`` names node outputs to report as well (latents)."""
    events: list = []
    graph = load_graph(WORKFLOWS / f"{name}.json")
    if outputs:
        graph = graph.model_copy(update={"outputs": outputs})
    result = executor.run(graph, inputs, listener=events.append, timeout=300)
    assert result.status == "success", result.error
    return result, events


def saved(result, node: str) -> list[np.ndarray]:
    store = FileStore(get_settings().home / "files")
    pictures = []
    for entry in result.ui[node]["images"]:
        with Image.open(store.root / entry["subfolder"] / entry["filename"]) as image:
            pictures.append(np.asarray(image.convert("RGB")).astype(int))
    return pictures


def round_trip(executor, ckpt: str, image: str) -> np.ndarray:
    """The checkpoint's VAE reconstruction of a picture (what kept latents decode to)."""
    result = executor.run(graph_from_comfy({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0],
                                                    "filename_prefix": "test/round"}}}),
        {}, timeout=300)
    assert result.status == "success", result.error
    return saved(result, "5")[0]


SMALL = {"steps": 2, "cfg": 5.0, "seed": 7}


def test_every_workflow_declares_its_placeholders_as_inputs():
    graph = load_graph(WORKFLOWS / "txt2img.json")
    assert {"prompt", "seed", "ckpt_name", "width", "height"} <= set(graph.inputs)
    assert graph.inputs["prompt"].is_required and graph.inputs["steps"].default == 20
    assert graph.nodes["3"].inputs["seed"] == "${inputs.seed}"
    assert graph.description.startswith("HomePilot's txt2img workflow")
    for path in sorted(WORKFLOWS.glob("*.json")):
        assert load_graph(path).inputs, path.name


def test_txt2img(executor, test_pack):
    result, events = run(executor, "txt2img", prompt="a red fox", ckpt_name=TINY_CHECKPOINT,
                         width=64, height=48, **SMALL)
    (image,) = saved(result, "9")
    assert image.shape == (48, 64, 3)
    assert [e.data["max"] for e in events if e.type == "node_progress" and e.node_id == "3"] \
        == [2, 2]


def test_edit_redraws_part_way_from_the_picture(executor, test_pack, input_dir):
    source = put(input_dir, "source.png", picture(1))
    kept, _ = run(executor, "edit", prompt="a blue sky", ckpt_name=TINY_CHECKPOINT,
                  image_path=source, denoise=0.0, **SMALL)
    edited, events = run(executor, "edit", prompt="a blue sky", ckpt_name=TINY_CHECKPOINT,
                         image_path=source, denoise=0.6, **SMALL)
    # denoise 0 keeps the latent: the picture is the VAE's reconstruction of the source
    assert np.array_equal(saved(kept, "8")[0], round_trip(executor, TINY_CHECKPOINT, source))
    (image,) = saved(edited, "8")
    assert image.shape == (64, 64, 3) and not np.array_equal(image, saved(kept, "8")[0])
    # ComfyUI runs all the steps asked for, from part-way down the schedule
    assert [e.data["value"] for e in events if e.type == "node_progress"
            and e.node_id == "6"] == [1, 2]


def unmasked_kept(result, repainted: slice) -> None:
    """The KSampler's latents equal its input outside the mask (ComfyUI's noise_mask) and
    moved inside it. Pixels are not compared region by region: a random-weight VAE's
    attention spreads every latent over the whole picture."""
    before, after = result.outputs["before"]["samples"], result.outputs["after"]["samples"]
    inside = np.zeros(before.shape[-1], bool)
    inside[repainted] = True
    assert float((after - before)[..., ~inside].abs().max()) < 1e-4
    assert float((after - before)[..., inside].abs().mean()) > 0.1


def test_inpaint_repaints_the_masked_part_with_an_inpainting_model(executor, test_pack,
                                                                   input_dir):
    source = put(input_dir, "source.png", picture(2))
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[:, :16, 0] = 255  # the red channel marks the left quarter
    mask_name = put(input_dir, "mask.png", Image.fromarray(mask))
    result, _ = run(executor, "edit_inpaint", prompt="a cat", ckpt_name=TINY_INPAINT,
                    image_path=source, mask_path=mask_name,
                    outputs={"before": "${7.2}", "after": "${8.0}", "image": "${9.0}"},
                    **SMALL)
    assert tuple(result.outputs["image"].shape) == (1, 64, 64, 3)
    # the inpainting model's VAE scales by 8: an 8×8 latent, its left quarter repainted
    unmasked_kept(result, slice(0, 2))


def test_outpaint_extends_the_canvas_and_keeps_the_original_latents(executor, test_pack,
                                                                    input_dir):
    source = put(input_dir, "source.png", picture(3))
    result, _ = run(executor, "outpaint", prompt="a field", ckpt_name=TINY_CHECKPOINT,
                    image_path=source, extend_right=32,
                    outputs={"before": "${7.0}", "after": "${8.0}"}, **SMALL)
    (image,) = saved(result, "10")
    assert image.shape == (64, 96, 3)
    # 96 px → 12 latent columns; the 32 px padding is the last 4
    unmasked_kept(result, slice(8, 12))


def test_background_replace_keeps_the_subject_exactly(executor, test_pack, input_dir):
    original = picture(4)
    subject = np.zeros((64, 64), bool)
    subject[16:48, 20:44] = True
    cut = original.convert("RGBA")
    cut.putalpha(Image.fromarray((subject * 255).astype(np.uint8)))
    result, _ = run(executor, "change_background_premask", prompt="a beach",
                    checkpoint=TINY_CHECKPOINT, image_path=put(input_dir, "cut.png", cut),
                    original_image_path=put(input_dir, "original.png", original), **SMALL)
    (image,) = saved(result, "13")
    source = np.asarray(original).astype(int)
    assert np.array_equal(image[subject], source[subject])
    assert np.abs(image[~subject] - source[~subject]).mean() > 5


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_placeholders_without_values_are_refused_by_name(executor, test_pack):
    from engine.errors import GraphValidationError

    with pytest.raises(GraphValidationError) as refused:
        executor.run(load_graph(WORKFLOWS / "txt2img.json"), {"seed": 1}, timeout=60)
    missing = {i.input for i in refused.value.issues if i.kind == "required_input_missing"}
    assert missing == {"prompt", "ckpt_name"}


def test_upscale_reaches_the_exact_size(executor, test_pack, input_dir):
    from nodes.testpack.install import TINY_UPSCALER

    result, _ = run(executor, "upscale", image_path=put(input_dir, "small.png",
                                                        picture(5, (24, 16))),
                    upscale_model=TINY_UPSCALER, width=90, height=50,
                    outputs={"upscaled": "${3.0}"})
    assert tuple(result.outputs["upscaled"].shape) == (1, 64, 96, 3)  # the model's ×4
    (image,) = saved(result, "5")
    assert image.shape == (50, 90, 3)


def test_img2vid_makes_the_frames_asked_for(executor, test_pack, input_dir):
    from nodes.testpack.install import TINY_VIDEO

    result, events = run(executor, "img2vid", image_path=put(input_dir, "still.png",
                                                             picture(6)),
                         ckpt_name=TINY_VIDEO, width=64, height=64, frames=3, fps=8,
                         steps=2, cfg=2.5, seed=3)
    (entry,) = result.ui["7"]["images"]
    assert result.ui["7"]["animated"] == [True]
    store = FileStore(get_settings().home / "files")
    with Image.open(store.root / entry["subfolder"] / entry["filename"]) as video:
        assert (video.format, video.n_frames, video.size) == ("WEBP", 3, (64, 64))
    assert [e.data["value"] for e in events if e.type == "node_progress"
            and e.node_id == "5"] == [1, 2]
