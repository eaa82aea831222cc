"""ComfyUI's core nodes through ComfyUI's API: a txt2img prompt, its pictures, its refusals."""

from __future__ import annotations

import copy
import io
import json
import uuid

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.settings import get_settings
from nodes.testpack.install import TINY_CHECKPOINT, TINY_SD
from server.app import create_app
from tests.nodes.comfy.prompts import txt2img
from tests.server.test_comfy_api import wait_history

TXT2IMG = txt2img(steps=3, batch=2, prefix="core/txt2img")


@pytest.fixture
def client(registry, executor, test_pack):
    """The app on the test home, whose model store holds the test pack and whose files are
    where the session's executors save them."""
    with TestClient(create_app(get_settings(), registry, executor)) as client:
        yield client


WORKFLOW = {"last_node_id": 9, "nodes": [], "links": [], "version": 0.4}


def submit(client, prompt: dict) -> dict:
    client_id = uuid.uuid4().hex
    with client.websocket_connect(f"/ws?clientId={client_id}") as socket:
        json.loads(socket.receive_text())
        accepted = client.post("/prompt", json={
            "prompt": prompt, "client_id": client_id,
            "extra_data": {"extra_pnginfo": {"workflow": WORKFLOW}}})
        assert accepted.status_code == 200, accepted.text
        return {"id": accepted.json()["prompt_id"],
                **wait_history(client, accepted.json()["prompt_id"], socket)}


def fetched(client, entry: dict) -> Image.Image:
    answer = client.get("/view", params=entry)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(answer.content))


def test_txt2img_runs_through_prompt_and_the_pictures_come_back_through_view(client,
                                                                             test_pack):
    seen = submit(client, TXT2IMG)
    executed = [f["data"] for f in seen["frames"] if f["type"] == "executed"]
    assert [e["node"] for e in executed] == ["9"]
    images = executed[0]["output"]["images"]
    assert len(images) == 2 and all(i["type"] == "output" and i["subfolder"] == "core"
                                    for i in images)
    pictures = [fetched(client, i) for i in images]
    assert [p.size for p in pictures] == [(64, 64), (64, 64)]
    assert pictures[0].tobytes() != pictures[1].tobytes()  # two different noises
    # ComfyUI's PNG text chunks: the API prompt, and the editor's workflow to reopen
    assert json.loads(pictures[0].text["prompt"]) == TXT2IMG
    assert json.loads(pictures[0].text["workflow"]) == WORKFLOW
    assert seen["previews"] >= 1  # the KSampler's latent previews, as binary frames
    progress = [f["data"] for f in seen["frames"] if f["type"] == "progress"]
    assert [(p["value"], p["max"]) for p in progress if p["node"] == "3"] == \
        [(1, 3), (2, 3), (3, 3)]
    # the same seed again, a new file: the same pixels
    again = submit(client, {**TXT2IMG, "9": {**TXT2IMG["9"], "inputs": {
        **TXT2IMG["9"]["inputs"], "filename_prefix": "core/again"}}})
    repeat = next(f["data"] for f in again["frames"] if f["type"] == "executed")
    assert fetched(client, repeat["output"]["images"][0]).tobytes() == pictures[0].tobytes()


def _refused(client, prompt: dict) -> dict:
    before = len(client.get("/history").json())
    answer = client.post("/prompt", json={"prompt": prompt})
    assert answer.status_code == 400, answer.text
    assert len(client.get("/history").json()) == before  # nothing ran
    return answer.json()


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_bad_core_graphs_are_refused_in_comfyuis_node_errors_shape(client, test_pack):
    unknown_sampler = copy.deepcopy(TXT2IMG)
    unknown_sampler["3"]["inputs"]["sampler_name"] = "dpm_adaptive"
    body = _refused(client, unknown_sampler)
    (error,) = body["node_errors"]["3"]["errors"]
    assert error["type"] == "value_not_in_list" and error["extra_info"]["input_name"] == \
        "sampler_name"
    assert "'dpm_adaptive' is not one of" in error["details"] and "dpmpp_2m" in error["details"]

    missing = copy.deepcopy(TXT2IMG)
    missing["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    body = _refused(client, missing)
    (error,) = body["node_errors"]["4"]["errors"]
    assert error["extra_info"]["input_name"] == "ckpt_name"
    assert "'nope.safetensors' not in" in error["details"] and TINY_CHECKPOINT in error["details"]

    crossed = copy.deepcopy(TXT2IMG)
    crossed["9"]["inputs"]["images"] = ["3", 0]  # a LATENT into an IMAGE input
    body = _refused(client, crossed)
    (error,) = body["node_errors"]["9"]["errors"]
    assert error["type"] == "return_type_mismatch"
    assert body["node_errors"]["9"]["class_type"] == "SaveImage"


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_object_info_describes_core_nodes_as_comfyui_does(client, test_pack):
    info = client.get("/object_info").json()
    sampler = info["KSampler"]
    assert (sampler["category"], sampler["python_module"], sampler["display_name"]) == \
        ("sampling", "nodes", "KSampler")
    assert sampler["input_order"]["required"] == [
        "model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
        "latent_image", "denoise"]
    assert sampler["input"]["required"]["sampler_name"][0][0] == "euler"
    assert sampler["input"]["required"]["scheduler"][0][:3] == ["simple", "sgm_uniform",
                                                              "karras"]
    assert sampler["input"]["required"]["seed"][1]["max"] == 2**64 - 1
    assert sampler["output"] == ["LATENT"]
    loader = info["CheckpointLoaderSimple"]
    assert loader["category"] == "loaders" and loader["output"] == ["MODEL", "CLIP", "VAE"]
    assert loader["output_name"] == ["MODEL", "CLIP", "VAE"]
    assert {TINY_SD, TINY_CHECKPOINT} <= set(loader["input"]["required"]["ckpt_name"][0])
    categories = {name: info[name]["category"] for name in (
        "CLIPTextEncode", "EmptyLatentImage", "VAEDecode", "SaveImage", "LoadImage",
        "ImageToMask", "InpaintModelConditioning", "ImagePadForOutpaint")}
    assert categories == {"CLIPTextEncode": "conditioning", "EmptyLatentImage": "latent",
                          "VAEDecode": "latent", "SaveImage": "image", "LoadImage": "image",
                          "ImageToMask": "mask",
                          "InpaintModelConditioning": "conditioning/inpaint",
                          "ImagePadForOutpaint": "image"}


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_graphs_validate_accepts_homepilot_workflow_files(client, test_pack):
    from pathlib import Path

    workflow = json.loads((Path(__file__).resolve().parents[2] / "graphs" / "comfy" /
                           "edit.json").read_text())
    checked = client.post("/graphs/validate", json={"graph": workflow}).json()
    assert checked == {"ok": True, "issues": []}
    bad = client.post("/graphs/validate", json={"graph": workflow, "inputs": {
        "sampler_name": "dpm_adaptive", "ckpt_name": "nope"}}).json()
    assert bad["ok"] is False
    assert {(i["node_id"], i["input"]) for i in bad["issues"] if i["node_id"]} == {
        ("6", "sampler_name"), ("1", "ckpt_name")}
    # with inputs given, the placeholders still unfilled are named too
    assert {i["input"] for i in bad["issues"] if i["kind"] == "required_input_missing"} == {
        "prompt", "seed", "image_path"}
    # the library lists the shipped workflows by name, with their placeholders as inputs
    listed = {g["name"]: g for g in client.get("/graphs").json()}
    assert {"prompt", "image_path", "denoise"} <= set(listed["comfy/edit"]["inputs"])
