"""SDXL through ComfyUI's core nodes: two CLIPs, the pooled vector and size ids reaching the
UNet, on the test pack's tiny SDXL pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from engine.executors.base import Executor
from engine.loader import graph_from_comfy
from engine.models.store import ModelStore
from nodes.backends.ksampler import Conditioning, Job, Model, sample
from nodes.backends.sdxl import time_ids
from nodes.backends.sigmas import ModelSigmas
from nodes.comfy.conditioning import CLIPTextEncodeSDXL
from nodes.testpack.install import TINY_SD, TINY_SDXL
from nodes.testpack.sdxl import G_PROJECTION, G_WIDTH, L_WIDTH
from tests.conftest import session_executor
from tests.nodes.comfy.prompts import txt2img

STEPS = 2
TXT2IMG = txt2img(TINY_SDXL, steps=STEPS, output="image.Save")


def _saved(result: Any, node: str) -> np.ndarray:
    from engine.files import FileStore
    from engine.settings import get_settings

    (entry,) = result.ui[node]["images"]
    with Image.open(FileStore(get_settings().home / "files").path(entry["filename"])) as image:
        return np.asarray(image.convert("RGB"))


def _backend(store: ModelStore, model_id: str) -> Any:
    from nodes.backends.diffusers_sd import DiffusersBackend

    manifest = store.get(model_id)
    return DiffusersBackend(manifest, store.weights(manifest), "cpu")


@pytest.fixture(scope="module")
def sdxl(model_store: ModelStore, test_pack: list[str]) -> Any:
    return _backend(model_store, TINY_SDXL)


# -- graphs ------------------------------------------------------------------------------

def test_the_core_txt2img_graph_draws_sdxl_and_equals_text_to_image(executor: Executor,
                                                                     test_pack: list[str]):
    """HomePilot's txt2img shape on SDXL: 64×64 pictures, steps reported, and the same
    pixels as image.TextToImage with ComfyUI's sampler and the same settings."""
    prompt = {**TXT2IMG,
              "20": {"class_type": "image.TextToImage", "inputs": {
                  "model": TINY_SDXL, "prompt": "a red fox", "negative_prompt": "",
                  "width": 64, "height": 64, "steps": STEPS, "cfg": 6.0, "seed": 7,
                  "sampler": "euler", "scheduler": "karras"}},
              "21": {"class_type": "image.Save", "inputs": {"image": ["20", 0]}}}
    events: list[Any] = []
    result = executor.run(graph_from_comfy(prompt), {}, listener=events.append, timeout=300)
    assert result.status == "success", result.error
    steps = [(e.data["value"], e.data["max"]) for e in events
             if e.type == "node_progress" and e.node_id == "3"]
    assert steps == [(1, STEPS), (2, STEPS)]
    core = _saved(result, "9")
    assert core.shape == (64, 64, 3) and core.std() > 0
    assert np.array_equal(core, _saved(result, "21"))


def test_clip_text_encode_sdxl_sizes_reach_the_unet(registry: Any, _executors: dict,
                                                    request: pytest.FixtureRequest,
                                                    test_pack: list[str]):
    """The plain node equals CLIPTextEncodeSDXL at the latent's size × 8 with crops 0 (the
    sampler's default); other sizes give another picture. One executor: the node runs
    the same host calls on both, and the graph above covers Ray."""
    def sized(width: int, height: int, crop_w: int, crop_h: int, target_w: int,
              target_h: int) -> dict[str, Any]:
        return {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            "clip": ["4", 1], "width": width, "height": height, "crop_w": crop_w,
            "crop_h": crop_h, "target_width": target_w, "target_height": target_h,
            "text_g": "a red fox", "text_l": "a red fox"}}

    prompt = dict(TXT2IMG)
    prompt["11"] = sized(64, 64, 0, 0, 64, 64)
    prompt["12"] = sized(1024, 768, 16, 32, 512, 512)
    for number, positive in (("13", "11"), ("14", "12")):
        prompt[number] = {"class_type": "KSampler", "inputs": {
            **TXT2IMG["3"]["inputs"], "positive": [positive, 0]}}
        prompt[number + "d"] = {"class_type": "VAEDecode",
                                "inputs": {"samples": [number, 0], "vae": ["4", 2]}}
        prompt[number + "s"] = {"class_type": "image.Save",
                                "inputs": {"image": [number + "d", 0]}}
    executor = session_executor(request, registry, _executors, "local")
    executor.clear_cache()
    result = executor.run(graph_from_comfy(prompt), {}, timeout=300)
    assert result.status == "success", result.error
    plain, default, other = (_saved(result, node) for node in ("9", "13s", "14s"))
    assert np.array_equal(plain, default)
    assert not np.array_equal(plain, other)


def test_clip_text_encode_sdxl_declares_comfyuis_inputs():
    spec = CLIPTextEncodeSDXL.__node_def__.spec
    assert [i.name for i in spec.inputs] == ["clip", "width", "height", "crop_w", "crop_h",
                                             "target_width", "target_height", "text_g",
                                             "text_l"]
    inputs = {i.name: i for i in spec.inputs}
    assert (inputs["width"].default, inputs["width"].min, inputs["width"].max) == (1024, 0,
                                                                                  16384)
    assert inputs["crop_w"].default == 0 and inputs["target_height"].default == 1024
    assert inputs["text_g"].multiline and inputs["text_l"].multiline
    assert (spec.category, spec.display_name) == ("advanced/conditioning",
                                                  "CLIPTextEncodeSDXL")


# -- the host's encoding -----------------------------------------------------------------

def _by_hand(folder: Any, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's conditioning computed with transformers alone: both tokenizers padded to 77
    (L with its end token, G with 0), penultimate hidden states concatenated L then G,
    pooled = G's projection."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    outputs = []
    for tokenizer_dir, encoder_class, encoder_dir in (
            ("tokenizer", CLIPTextModel, "text_encoder"),
            ("tokenizer_2", CLIPTextModelWithProjection, "text_encoder_2")):
        tokenizer = CLIPTokenizer.from_pretrained(str(folder / tokenizer_dir))
        ids = tokenizer(text, padding="max_length", max_length=77,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            outputs.append(encoder_class.from_pretrained(str(folder / encoder_dir))(
                ids, output_hidden_states=True))
    embeds = torch.cat([o.hidden_states[-2] for o in outputs], dim=-1)
    return embeds, outputs[1].text_embeds


def test_clip_text_encode_on_sdxl_is_the_two_clips_penultimate_layers(
        sdxl: Any, model_store: ModelStore):
    ((embeds, info),) = sdxl.encode_text("a red fox")
    assert embeds.shape == (1, 77, L_WIDTH + G_WIDTH)
    assert info["pooled_output"].shape == (1, G_PROJECTION)
    assert set(info) == {"pooled_output"}  # sizes come from the latent when sampling
    expected, pooled = _by_hand(model_store.weights(model_store.get(TINY_SDXL)), "a red fox")
    assert torch.allclose(embeds, expected, atol=1e-6)
    assert torch.allclose(info["pooled_output"], pooled, atol=1e-6)


def test_sdxl_weights_and_chunks_follow_comfyui(sdxl: Any):
    from nodes.backends.prompt import chunks

    # G pads with token 0, L with its end token
    (g_chunk,) = chunks(sdxl.base.tokenizer_2, "a red fox", pad=0)
    (l_chunk,) = chunks(sdxl.base.tokenizer, "a red fox")
    end = sdxl.base.tokenizer.eos_token_id
    assert {t for t, _ in g_chunk[5:]} == {0} and {t for t, _ in l_chunk[5:]} == {end}
    # a weight moves the weighted token's embedding on both sides, not the others
    ((plain, _),) = sdxl.encode_text("a red fox")
    ((weighted, _),) = sdxl.encode_text("a (red:1.4) fox")
    changed = (weighted - plain).abs().amax(dim=-1)[0]
    assert changed[2] > 0 and (weighted - plain)[0, 2, :L_WIDTH].abs().max() > 0
    assert (weighted - plain)[0, 2, L_WIDTH:].abs().max() > 0
    assert changed[0] == 0  # the start token keeps weight 1


def test_clip_text_encode_sdxl_pads_the_shorter_side_with_empty_chunks(sdxl: Any):
    ((embeds, info),) = sdxl.encode_text_sdxl(" ".join(["fox"] * 100), "a red fox")
    assert embeds.shape == (1, 154, L_WIDTH + G_WIDTH)
    ((short, _),) = sdxl.encode_text("a red fox")
    ((empty, _),) = sdxl.encode_text("")
    # L's two chunks are encoded as one batch of 2, the references alone: kernels picked by
    # batch size may round differently (CPUs with and without AVX-512), hence a tolerance.
    assert torch.allclose(embeds[:, :77, :L_WIDTH], short[..., :L_WIDTH], atol=1e-5)
    assert torch.allclose(embeds[:, 77:, :L_WIDTH], empty[..., :L_WIDTH], atol=1e-5)
    ((both, _),) = sdxl.encode_text_sdxl("a red fox", "a red fox")
    assert torch.equal(both, short)


def test_clip_text_encode_sdxl_refuses_a_single_clip_checkpoint(model_store: ModelStore,
                                                                test_pack: list[str]):
    with pytest.raises(ValueError, match="two text encoders"):
        _backend(model_store, TINY_SD).encode_text_sdxl("a fox", "a fox")


# -- the sampler ---------------------------------------------------------------------------

def test_missing_sizes_default_to_the_latent_in_pixels_with_no_crop():
    assert time_ids({}, 8, 6) == [64.0, 48.0, 0.0, 0.0, 64.0, 48.0]
    # the target follows an explicit size, as ComfyUI's SDXL model defaults it
    assert time_ids({"width": 100, "crop_h": 4}, 8, 6) == [64.0, 100.0, 4.0, 0.0, 64.0, 100.0]


class _Recorder(torch.nn.Module):
    """A stand-in SDXL UNet recording what it is given; it predicts ε = x / 2."""

    class config:  # noqa: N801 - the attributes diffusers' UNets carry
        in_channels = 4
        addition_embed_type = "text_time"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def forward(self, x: Any, t: Any, encoder_hidden_states: Any,
                added_cond_kwargs: dict[str, Any]) -> Any:
        self.seen.append(added_cond_kwargs)

        class Out:
            sample = 0.5 * x
        return Out()


def test_each_entry_brings_its_pooled_vector_and_size_ids_to_the_unet():
    unet = _Recorder()
    sizes = {"width": 1024, "height": 768, "crop_w": 16, "crop_h": 32, "target_width": 512,
             "target_height": 256}
    positive = Conditioning(torch.zeros(1, 77, 8), {"pooled_output": torch.ones(1, 5),
                                                    **sizes})
    negative = Conditioning(torch.zeros(1, 77, 8), {"pooled_output": torch.zeros(1, 5)})
    job = Job(latent={"samples": torch.zeros(2, 4, 8, 6)}, positive=[positive],
              negative=[negative], seed=1, steps=1, cfg=5.0)
    model = Model(unet=unet, sigmas=ModelSigmas.from_config({}), scale=0.13025)
    for _ in sample(model, job):
        pass
    (added,) = unet.seen  # one step: positive and negative in one batch
    assert added["time_ids"].tolist() == [[768, 1024, 32, 16, 256, 512]] * 2 + [
        [64, 48, 0, 0, 64, 48]] * 2
    assert added["text_embeds"].tolist() == [[1.0] * 5] * 2 + [[0.0] * 5] * 2
    # an entry without a pooled vector (another model's conditioning) is refused clearly
    job.negative = [Conditioning(torch.zeros(1, 77, 8), {})]
    with pytest.raises(ValueError, match="pooled_output"):
        for _ in sample(model, job):
            pass
