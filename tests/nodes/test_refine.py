"""llm.RefineImagePrompt: the named provider (an OpenAI-compatible one the test runs on
127.0.0.1), the local model when the provider fails, and the prompt as written when off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request

from engine.executors.local import LocalExecutor
from engine.graph import Graph
from engine.settings import get_settings
from nodes.refine import cleaned
from tests.serving import serving


def refine(executor: LocalExecutor, **inputs) -> dict:
    graph = Graph.model_validate({
        "nodes": {"refine": {"type": "llm.RefineImagePrompt",
                             "inputs": {"prompt": "a lighthouse", **inputs}}},
        "outputs": {"prompt": "${refine.prompt}", "refiner": "${refine.refiner}",
                    "note": "${refine.note}"}})
    result = executor.run(graph, timeout=120)
    assert result.status == "success", result.error
    return result.outputs


@pytest.fixture
def local(registry) -> Iterator[LocalExecutor]:
    settings = get_settings()
    settings.fetch_allow = "127.0.0.1"  # the test provider listens on loopback
    executor = LocalExecutor(registry)
    yield executor
    executor.close()
    settings.fetch_allow = ""


def openai_app(seen: list[dict], status: int = 200) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        from fastapi.responses import JSONResponse

        body = await request.json()
        seen.append(body)
        return JSONResponse({"choices": [{"index": 0, "message": {
            "role": "assistant",
            "content": "\n\nImage prompt: 'A lighthouse on a cliff at dawn, oil painting'\n"
                       "Hope this helps!"}}]}, status_code=status)

    return app


def test_replies_are_cleaned_to_one_prompt_line():
    assert cleaned('  \n"Prompt: a fox, snow"\nmore') == "a fox, snow"
    assert cleaned("Refined prompt: `a cat`") == "a cat"
    assert cleaned("") == ""
    long = cleaned("word " * 300)
    assert len(long) <= 600 and not long.endswith(" ")


def test_an_openai_compatible_provider_refines(local):
    seen: list[dict] = []
    with serving(openai_app(seen)) as base:
        out = refine(local, provider="openai_compat", base_url=base, provider_model="m1",
                     safe=False, seed=4)
    assert out == {"prompt": "A lighthouse on a cliff at dawn, oil painting",
                   "refiner": "openai_compat:m1", "note": ""}
    (body,) = seen
    assert body["model"] == "m1" and body["seed"] == 4
    assert body["messages"][1] == {"role": "user", "content": "a lighthouse"}
    assert "safe for work" not in body["messages"][0]["content"]  # nsfwMode on


def test_a_failing_provider_falls_back_to_the_local_model(local):
    seen: list[dict] = []
    with serving(openai_app(seen, status=500)) as base:
        out = refine(local, provider="openai_compat", base_url=base, provider_model="m1")
    assert len(seen) == 1 and out["refiner"].startswith("local:")
    assert "answered 500" in out["note"] and "the local model refined instead" in out["note"]
    assert out["prompt"] and out["prompt"] != "a lighthouse"
    # Half a provider (no model) is not tried; the local model refines and says why.
    half = refine(local, base_url="http://127.0.0.1:9")
    assert half["refiner"].startswith("local:") and "both an address and a model" in \
        half["note"]


def test_off_the_prompt_passes_through(local):
    assert refine(local, enabled=False, base_url="http://127.0.0.1:9",
                  provider_model="m") == {"prompt": "a lighthouse", "refiner": "none",
                                          "note": ""}
