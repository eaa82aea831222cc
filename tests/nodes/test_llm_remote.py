"""llm.ChatRemote against a small OpenAI-compatible server the test runs on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from engine.events import Event
from engine.executors.local import LocalExecutor
from engine.graph import Graph
from engine.settings import get_settings
from tests.serving import free_port, serving


def provider_app(seen: list[dict]) -> FastAPI:
    """Streams the words of the last user message back, reversed, as OpenAI chunks."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("authorization")})
        if body["model"] == "missing":
            return JSONResponse({"error": {"message": "no such model"}}, status_code=404)
        if body["model"] == "internal":  # a service that is not a provider, and talks
            return JSONResponse({"admin_token": "s3cret-internal"}, status_code=403)
        words = body["messages"][-1]["content"].split()[::-1]

        def chunks() -> Iterator[str]:
            for word in words:
                delta = {"choices": [{"index": 0, "delta": {"content": word + " "},
                                      "finish_reason": None}]}
                yield f"data: {json.dumps(delta)}\n\n"
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": len(words),
                              "total_tokens": 5 + len(words)}}
            yield f"data: {json.dumps(done)}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


def remote_graph(base_url: str, model: str = "tiny") -> Graph:
    return Graph.model_validate({
        "nodes": {"msgs": {"type": "llm.Messages", "inputs": {"message": "one two three"}},
                  "chat": {"type": "llm.ChatRemote", "inputs": {
                      "messages": "${msgs.messages}", "base_url": base_url, "model": model,
                      "api_key": "sk-test", "provider": "test-provider", "temperature": 0}}},
        "outputs": {"text": "${chat.text}", "usage": "${chat.usage}"}})


@pytest.fixture
def local(registry) -> Iterator[LocalExecutor]:
    """An in-process executor whose settings allow-list 127.0.0.1, where the test
    providers listen (the guard refuses loopback otherwise)."""
    settings = get_settings()
    settings.fetch_allow = "127.0.0.1"
    executor = LocalExecutor(registry)
    yield executor
    executor.close()
    settings.fetch_allow = ""


def test_a_remote_provider_streams_its_reply(local):
    seen: list[dict] = []
    events: list[Event] = []
    with serving(provider_app(seen)) as base:
        result = local.run(remote_graph(f"{base}/v1"), listener=events.append, timeout=60)
    assert result.status == "success", result.error
    assert result.outputs["text"] == "three two one "
    assert result.outputs["usage"]["completion_tokens"] == 3
    assert [e.data["text"] for e in events if e.type == "node_progress"] == \
        ["three ", "two ", "one "]
    (request,) = seen
    assert request["auth"] == "Bearer sk-test" and request["body"]["stream"] is True
    assert request["body"]["messages"] == [{"role": "user", "content": "one two three"}]


def test_an_unreachable_provider_is_a_node_error_naming_it(local):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    result = local.run(remote_graph(url), timeout=60)
    assert result.status == "failed"
    assert result.error.node_id == "chat" and result.error.error_type == "RemoteProviderError"
    assert "test-provider" in result.error.message and url in result.error.message


def test_a_provider_refusal_carries_its_status(local):
    with serving(provider_app([])) as base:
        result = local.run(remote_graph(f"{base}/v1", model="missing"), timeout=60)
    assert result.status == "failed"
    assert "answered 404" in result.error.message and "no such model" in result.error.message


def test_a_private_base_url_is_refused_before_any_request(registry):
    seen: list[dict] = []
    executor = LocalExecutor(registry)
    try:
        with serving(provider_app(seen)) as base:
            result = executor.run(remote_graph(f"{base}/v1"), timeout=60)
    finally:
        executor.close()
    assert result.status == "failed" and result.error.error_type == "RemoteProviderError"
    assert "private or loopback" in result.error.message
    assert seen == []  # the provider was never called, the key never sent


def test_the_configured_provider_url_is_reached_without_an_allow_list(registry):
    seen: list[dict] = []
    settings = get_settings()
    executor = LocalExecutor(registry)
    try:
        with serving(provider_app(seen)) as base:
            settings.llm_base_url = f"{base}/v1"
            result = executor.run(remote_graph(f"{base}/v1"), timeout=60)
    finally:
        settings.llm_base_url = "http://127.0.0.1:11434/v1"
        executor.close()
    assert result.status == "success", result.error
    assert len(seen) == 1


def test_a_refusal_that_is_not_openai_shaped_is_not_echoed(local):
    with serving(provider_app([])) as base:
        result = local.run(remote_graph(f"{base}/v1", model="internal"), timeout=60)
    assert result.status == "failed" and "answered 403" in result.error.message
    assert "s3cret" not in result.error.message
