"""The official ``openai`` client against our /v1 API, served for real on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from engine.executors.local import LocalExecutor
from engine.settings import Settings
from server.app import create_app
from tests.serving import serving


@pytest.fixture(scope="module")
def client(registry, tmp_path_factory) -> Iterator[openai.OpenAI]:
    from engine.settings import get_settings

    home = get_settings().home  # the test home: bundled models are registered there
    settings = Settings(home=home)
    executor = LocalExecutor(registry)
    app = create_app(settings, registry, executor)
    with serving(app) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    executor.close()


def test_models_lists_the_installed_chat_models(client):
    ids = [model.id for model in client.models.list()]
    assert "smollm2-135m-instruct" in ids and "all-minilm-l6-v2" not in ids


def test_a_completion_answers(client):
    reply = client.chat.completions.create(
        model="smollm2-135m-instruct", temperature=0, max_tokens=30,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0 and reply.model == "smollm2-135m-instruct"


def test_streaming_yields_several_chunks_that_make_the_reply(client):
    stream = client.chat.completions.create(
        model="default", temperature=0, max_tokens=30, stream=True,
        messages=[{"role": "user", "content": "Name three fruits."}])
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) >= 3 and "".join(pieces).strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert {c.model for c in chunks} == {"smollm2-135m-instruct"}  # "default", resolved


def test_an_unknown_model_is_a_404_the_client_understands(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user",
                                                                  "content": "hi"}])
    assert "gpt-17" in str(raised.value)


def test_bad_requests_are_4xx(client):
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="default", messages=[])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="default", temperature=5,
                                       messages=[{"role": "user", "content": "hi"}])
    # Past the context window: OpenAI's 400 context_length_exceeded, not a 502.
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="default", messages=[
            {"role": "user", "content": "hello " * 5000}])
    assert raised.value.code == "context_length_exceeded"


def test_engine_status_lists_the_resident_models(client):
    import httpx

    client.chat.completions.create(model="default", max_tokens=4, temperature=0,
                                   messages=[{"role": "user", "content": "Hi"}])
    root = str(client.base_url).removesuffix("/v1/").removesuffix("/v1")
    status = httpx.get(f"{root}/engine/status", timeout=30).json()
    llm = next(m for m in status["models"] if m["id"] == "smollm2-135m-instruct")
    assert llm["device"] == "cpu" and llm["requests"] >= 1 and llm["memory"] > 0
    assert llm["loaded_since"] > 0


def test_a_cached_reply_still_streams_its_text(client):
    def ask() -> str:
        stream = client.chat.completions.create(
            model="default", temperature=0, max_tokens=12, stream=True,
            messages=[{"role": "user", "content": "Tell me about cats."}])
        return "".join(c.choices[0].delta.content or "" for c in stream)
    first, again = ask(), ask()  # greedy and identical: the second comes from the cache
    assert first.strip() and again == first
