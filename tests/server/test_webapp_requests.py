"""The requests HomePilot's own web app sends for Imagine and Edit, as it sends them (a
preset and an aspect ratio, no sizes), against the test pack: presets follow the default
model's architecture, the prompt is refined by a chat model (the named provider, else the
local one), and each request finishes in seconds at the presets' real sizes."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI, Request

from engine.settings import get_settings
from nodes.testpack.install import TINY_SD
from server.services import presets
from tests.server.media import fetched, upload
from tests.serving import serving

# Exactly what the web app's Imagine page posted for "a red fox in the snow".
IMAGINE = {"message": "imagine a red fox in the snow", "mode": "imagine", "provider": "ollama",
           "ollama_base_url": "http://localhost:11434", "ollama_model": "llama3:8b",
           "imgAspectRatio": "1:1", "imgPreset": "med", "imgModel": "", "nsfwMode": False,
           "promptRefinement": True, "imgBatchSize": 1}
# The bound for the whole request on two cores (it takes a few seconds): a check
# that the test pack is fast at real sizes, with a wide margin, not a benchmark.
WHOLE_REQUEST = 60.0


def post(client, body: dict) -> tuple[dict, float]:
    start = time.perf_counter()
    reply = client.post("/chat", json=body)
    took = time.perf_counter() - start
    assert reply.status_code == 200, reply.text
    return reply.json(), took


@pytest.mark.parametrize(("aspect", "preset"), [("1:1", "med"), ("16:9", "high")])
def test_the_web_apps_imagine_request_draws_the_presets_picture_quickly(media_app, aspect,
                                                                        preset):
    out, took = post(media_app, {**IMAGINE, "imgAspectRatio": aspect, "imgPreset": preset})
    media = out["media"]
    # The default model is the tiny SD 1.5-shaped one: SD 1.5's sizes and values.
    (width, height), (steps, cfg) = presets.image_size("sd15", aspect), \
        presets.IMAGE_ARCH["sd15"][preset]
    assert media["model"] == TINY_SD and media["architecture"] == "sd15"
    assert (media["width"], media["height"], media["steps"], media["cfg"]) == \
        (width, height, steps, cfg)
    assert (media["preset"], media["aspect_ratio"]) == (preset, aspect)
    (url,) = media["images"]
    assert fetched(media_app, url).size == (width, height)
    print(f"imagine {aspect} {preset}: {width}x{height}, {steps} steps, {took:.1f} s")
    assert took < WHOLE_REQUEST
    # Ollama at localhost is not there (and loopback is not allow-listed): the local model
    # refined the prompt, and the reply says so.
    assert media["refiner"].startswith("local:")
    assert media["final_prompt"] and media["final_prompt"] != "a red fox in the snow"
    assert "ollama" in media["refine_note"] and "local model" in media["refine_note"]
    assert "Prompt refinement" in out["text"]
    assert "ignored" not in media  # every field of the request was applied


def ollama_app(seen: list[dict]) -> FastAPI:
    """Ollama's /api/chat, answering with a fixed prompt built from the idea."""
    app = FastAPI()

    @app.post("/api/chat")
    async def chat(request: Request) -> dict:
        body = await request.json()
        seen.append(body)
        idea = body["messages"][-1]["content"]
        return {"model": body["model"], "done": True, "message": {
            "role": "assistant", "content": f'Prompt: "{idea}, golden hour, 35mm photo"'}}

    return app


@pytest.fixture
def loopback_allowed():
    settings = get_settings()
    settings.fetch_allow = "127.0.0.1"
    yield
    settings.fetch_allow = ""


def test_a_provider_that_answers_refines_the_prompt(media_app, loopback_allowed):
    seen: list[dict] = []
    with serving(ollama_app(seen)) as base:
        out, _ = post(media_app, {**IMAGINE, "ollama_base_url": base, "imgPreset": "low"})
    media = out["media"]
    assert media["refiner"] == "ollama:llama3:8b" and "refine_note" not in media
    assert media["final_prompt"] == "a red fox in the snow, golden hour, 35mm photo"
    (request,) = seen
    assert request["model"] == "llama3:8b" and request["stream"] is False
    system, user = request["messages"]
    assert user == {"role": "user", "content": "a red fox in the snow"}
    assert "safe for work" in system["content"]  # nsfwMode false reached the refiner
    assert out["text"] == "Here you go."


def test_refinement_off_keeps_the_prompt_and_names_the_unused_fields(media_app):
    out, _ = post(media_app, {**IMAGINE, "promptRefinement": False, "imgPreset": "low"})
    media = out["media"]
    assert media["final_prompt"] == "a red fox in the snow" and media["refiner"] == "none"
    assert {i["field"] for i in media["ignored"]} == {"provider", "ollama_base_url",
                                                      "ollama_model"}


def test_the_web_apps_edit_requests_finish_quickly(media_app):
    """The Edit page's request at a real picture size, redrawn whole and inpainted (the
    inpainting model at the same size)."""
    from PIL import Image

    source = upload(media_app, Image.new("RGB", (512, 512), (40, 90, 160)))
    mask = Image.new("L", (512, 512), 0)
    mask.paste(255, (128, 128, 384, 384))
    mask_url = upload(media_app, mask.convert("RGB"))
    for message in (f"edit {source} make it look like sunset",
                    f"edit {source} add a red balloon --mask {mask_url}"):
        edited, took = post(media_app, {
            "message": message, "mode": "edit", "provider": "ollama", "imgPreset": "med",
            "imgAspectRatio": "1:1", "imgModel": ""})
        media = edited["media"]
        (picture,) = media["images"]
        assert fetched(media_app, picture).size == (512, 512)
        settings = media["edit_settings"]
        print(f"edit ({settings['mode']}) 512x512, {settings['steps']} steps: {took:.1f} s")
        assert took < WHOLE_REQUEST
