"""ComfyUI's image-to-video path on the tiny SVD: HomePilot's img2vid.json workflow on both
executors, SVD_img2vid_Conditioning's outputs, VideoLinearCFGGuidance's per-frame ramp,
and the EDM sampling checked against diffusers' own SVD pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from engine.loader import graph_from_comfy
from engine.models.store import ModelStore
from nodes.backends.sigmas import schedule
from nodes.backends.svd import EdmSigmas
from nodes.testpack.install import TINY_VIDEO

EDM = EdmSigmas.between(0.002, 700.0)


def still(width: int = 80, height: int = 48) -> Image.Image:
    """A picture with structure: a gradient, a ground band and a round subject."""
    ramp = np.linspace(30, 220, width, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (height, 1)), np.full((height, width), 90, np.uint8),
                       np.full((height, width), 200, np.uint8)], axis=-1)
    picture = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, height * 3 // 4, width, height), fill=(30, 140, 40))
    draw.ellipse((width // 3, height // 4, width * 2 // 3, height * 3 // 4), fill=(230, 200, 40))
    return picture


@pytest.fixture
def init_image(input_dir: Path) -> str:
    """The LoadImage name of a still in the input folder (not the clip's aspect ratio, so
    the centre crop is exercised)."""
    still().save(input_dir / "still.png")
    return f"{input_dir.name}/still.png"


def img2vid(image: str, frames: int = 3, steps: int = 2, cfg: float = 2.5,
            min_cfg: float = 1.0, prefix: str = "svd_video") -> dict[str, Any]:
    """HomePilot's img2vid.json (SVD XT) with its placeholders filled in."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": TINY_VIDEO}},
        "3": {"class_type": "SVD_img2vid_Conditioning", "inputs": {
            "clip_vision": ["2", 1], "init_image": ["1", 0], "vae": ["2", 2], "width": 64,
            "height": 64, "video_frames": frames, "motion_bucket_id": 127, "fps": 6,
            "augmentation_level": 0.0}},
        "4": {"class_type": "VideoLinearCFGGuidance",
              "inputs": {"model": ["2", 0], "min_cfg": min_cfg}},
        "5": {"class_type": "KSampler", "inputs": {
            "seed": 11, "steps": steps, "cfg": cfg, "sampler_name": "euler",
            "scheduler": "karras", "denoise": 1.0, "model": ["4", 0], "positive": ["3", 0],
            "negative": ["3", 1], "latent_image": ["3", 2]}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["2", 2]}},
        "7": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["6", 0], "fps": 6, "lossless": False, "quality": 85,
            "method": "default", "filename_prefix": prefix}},
    }


# -- the workflow, end to end ------------------------------------------------------------------

def test_img2vid_workflow_saves_the_clip_asked_for(executor, test_pack, init_image):
    events: list[Any] = []
    result = executor.run(graph_from_comfy(img2vid(init_image, frames=4)), {},
                          listener=events.append, timeout=300)
    assert result.status == "success", result.error
    steps = [(e.data["value"], e.data["max"]) for e in events
             if e.type == "node_progress" and e.node_id == "5"]
    assert steps == [(1, 2), (2, 2)]
    (saved,) = result.ui["7"]["images"]
    assert result.ui["7"]["animated"] == [True] and saved["type"] == "output"
    path = executor.file_store().root / saved["subfolder"] / saved["filename"]
    with Image.open(path) as webp:
        assert (webp.format, webp.n_frames, webp.size) == ("WEBP", 4, (64, 64))


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_an_uninstalled_video_model_is_refused_before_running(executor, test_pack,
                                                              init_image):
    from engine.errors import GraphValidationError

    prompt = img2vid(init_image)
    prompt["2"]["inputs"]["ckpt_name"] = "svd_xt_1_1.safetensors"
    with pytest.raises(GraphValidationError) as refused:
        executor.run(graph_from_comfy(prompt), {}, timeout=60)
    (issue,) = refused.value.issues
    assert (issue.node_id, issue.input) == ("2", "ckpt_name")
    assert "svd_xt_1_1.safetensors" in issue.message and TINY_VIDEO in issue.message


# -- the nodes' values -------------------------------------------------------------------------

def conditioning_graph(make_graph, image: str, **sampling: Any) -> Any:
    """Loader, conditioning and (with ``sampling``) a KSampler; every value an output."""
    nodes: dict[str, Any] = {
        "load": {"type": "LoadImage", "inputs": {"image": image}},
        "svd": {"type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": TINY_VIDEO}},
        "cond": {"type": "SVD_img2vid_Conditioning", "inputs": {
            "clip_vision": "${svd.CLIP_VISION}", "init_image": "${load.IMAGE}",
            "vae": "${svd.VAE}", "width": 64, "height": 48, "video_frames": 3,
            "motion_bucket_id": 40, "fps": 8}},
    }
    outputs = {"positive": "${cond.positive}", "negative": "${cond.negative}",
               "latent": "${cond.latent}"}
    if sampling:
        model = "${svd.MODEL}"
        if "min_cfg" in sampling:
            nodes["ramp"] = {"type": "VideoLinearCFGGuidance",
                             "inputs": {"model": model, "min_cfg": sampling.pop("min_cfg")}}
            model = "${ramp.MODEL}"
        nodes["sample"] = {"type": "KSampler", "inputs": {
            "model": model, "positive": "${cond.positive}", "negative": "${cond.negative}",
            "latent_image": "${cond.latent}", "seed": 5, "sampler_name": "lcm",
            "scheduler": "karras", **sampling}}
        outputs["samples"] = "${sample.LATENT}"
    return make_graph(nodes, outputs=outputs)


def test_svd_conditioning_has_comfyuis_shapes_and_keys(executor, test_pack, init_image,
                                                       make_graph):
    result = executor.run(conditioning_graph(make_graph, init_image), {}, timeout=300)
    assert result.status == "success", result.error
    out = result.outputs
    ((pooled, info),) = out["positive"]
    ((zeros, negative_info),) = out["negative"]
    assert pooled.shape == (1, 1, 32)  # image_embeds with a leading axis: 1×B×D
    assert set(info) == {"motion_bucket_id", "fps", "augmentation_level",
                         "concat_latent_image"}
    assert (info["motion_bucket_id"], info["fps"], info["augmentation_level"]) == (40, 8, 0.0)
    # the raw latent of the 64×48 centre crop, through the 8× VAE
    assert info["concat_latent_image"].shape == (1, 4, 6, 8)
    assert info["concat_latent_image"].abs().sum() > 0
    assert zeros.shape == pooled.shape and not zeros.any()
    assert negative_info["concat_latent_image"].shape == (1, 4, 6, 8)
    assert not negative_info["concat_latent_image"].any()
    assert {k: v for k, v in negative_info.items() if k != "concat_latent_image"} == \
        {k: v for k, v in info.items() if k != "concat_latent_image"}
    samples = out["latent"]["samples"]
    assert samples.shape == (3, 4, 6, 8) and not samples.any()


def test_video_linear_cfg_ramps_guidance_from_the_first_frame_to_the_last(
        executor, test_pack, init_image, make_graph):
    # One lcm step returns x0 itself (no Euler cancellation at σ 700), and every run
    # starts from the same noise, so each frame shows the guidance it got: frame 0 the
    # unguided prediction (min_cfg 1), the last frame the full cfg's.
    def sampled(**sampling: Any) -> Any:
        graph = conditioning_graph(make_graph, init_image, steps=1, **sampling)
        result = executor.run(graph, {}, timeout=300)
        assert result.status == "success", result.error
        return result.outputs["samples"]["samples"]

    ramped = sampled(cfg=3.0, min_cfg=1.0)
    unguided, guided = sampled(cfg=1.0), sampled(cfg=3.0)
    assert torch.allclose(ramped[0], unguided[0], atol=1e-5)
    assert torch.allclose(ramped[2], guided[2], atol=1e-5)
    assert not torch.allclose(ramped[0], guided[0], atol=1e-3)
    # frame 1 sits half way: cfg 2 is the mean of the two x0 predictions
    assert torch.allclose(ramped[1], (unguided[1] + guided[1]) / 2, atol=1e-5)


# -- the sampling against diffusers' SVD -------------------------------------------------------

def test_edm_sigmas_are_comfyuis_continuous_table():
    assert EDM.sigma_min == pytest.approx(0.002) and EDM.sigma_max == pytest.approx(700.0)
    logs = EDM.sigmas.double().log()
    assert torch.allclose(logs.diff(), logs.diff().mean().expand(999), atol=1e-4)
    sigma = torch.tensor(3.0)
    assert float(EDM.timestep(sigma)) == pytest.approx(0.25 * np.log(3.0))
    assert float(EDM.sigma(EDM.timestep(sigma))) == pytest.approx(3.0)
    # normal steps evenly in c_noise, which for EDM is the exponential schedule
    assert schedule(EDM, "normal", 6) == pytest.approx(schedule(EDM, "exponential", 6),
                                                       rel=1e-4)


def test_karras_sigmas_and_timesteps_match_svds_scheduler():
    from diffusers import EulerDiscreteScheduler

    from nodes.testpack.video import SVD_SCHEDULER

    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER)
    scheduler.set_timesteps(7)
    ours = schedule(EDM, "karras", 7)
    assert ours == pytest.approx(scheduler.sigmas.tolist(), rel=1e-5)
    assert [0.25 * np.log(s) for s in ours[:-1]] == pytest.approx(
        scheduler.timesteps.tolist(), abs=1e-5)


@pytest.fixture(scope="module")
def backend(test_pack: list[str], model_store: ModelStore) -> Iterator[Any]:
    from nodes.backends.diffusers_video import VideoBackend

    loaded = VideoBackend(model_store.get(TINY_VIDEO), model_store.folder(TINY_VIDEO) /
                          "weights", "cpu")
    yield loaded
    loaded.close()


def test_ksample_walks_the_same_path_as_diffusers_svd_pipeline(backend):
    # The same conditioning, noise and settings through diffusers' pipeline: its Euler on
    # Karras σ with continuous timesteps, min/max guidance over the frames, fps − 1 and
    # the raw image latent per frame are what ComfyUI's SVD sampling does too.
    pipe = backend.pipe
    picture, frames, seed = still(64, 48), 3, 7
    with torch.no_grad():
        embeds = pipe._encode_image(picture, "cpu", 1, False)
        pixels = pipe.video_processor.preprocess(picture, height=48, width=64)
        image_latent = pipe._encode_vae_image(pixels, "cpu", 1, False)
    noise = torch.randn((frames, 4, 6, 8), generator=torch.Generator("cpu").manual_seed(seed))
    expected = pipe(picture, height=48, width=64, num_frames=frames, num_inference_steps=3,
                    min_guidance_scale=1.5, max_guidance_scale=3.0, fps=8,
                    motion_bucket_id=60, noise_aug_strength=0.0, decode_chunk_size=frames,
                    latents=noise.unsqueeze(0), output_type="latent").frames[0]
    extra = {"fps": 8, "motion_bucket_id": 60, "augmentation_level": 0.0}
    updates = list(backend.ksample(
        latent={"samples": torch.zeros(frames, 4, 6, 8)},
        positive=[[embeds, {**extra, "concat_latent_image": image_latent}]],
        negative=[[torch.zeros_like(embeds),
                   {**extra, "concat_latent_image": torch.zeros_like(image_latent)}]],
        seed=seed, steps=3, cfg=3.0, min_cfg=1.5, sampler="euler", scheduler="karras"))
    assert [u["step"] for u in updates[:-1]] == [1, 2, 3]
    ours = updates[-1]["samples"] * pipe.vae.config.scaling_factor  # raw -> model space
    assert torch.allclose(ours, expected.float(), rtol=1e-3, atol=1e-3)


def test_the_temporal_decoder_gives_one_picture_per_frame(backend):
    latents = torch.randn(5, 4, 6, 8, generator=torch.Generator().manual_seed(0))
    pictures = backend.vae_decode(latents)
    assert pictures.shape == (5, 48, 64, 3)
    assert float(pictures.min()) >= 0.0 and float(pictures.max()) <= 1.0
    encoded = backend.vae_encode(pictures[:1, :, 3:63])  # 60 wide: cropped to 56
    assert encoded.shape == (1, 4, 6, 7)
