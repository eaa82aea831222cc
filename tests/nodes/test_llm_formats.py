"""llm.Chat with models the user installs: another GGUF, and a transformers folder."""

from __future__ import annotations

import pytest

from engine.graph import Graph
from engine.models.manifest import ModelManifest, ModelResources
from tests.fixtures.tiny_lm import build_tiny_lm


def chat_graph(model: str, max_tokens: int = 12) -> Graph:
    return Graph.model_validate({
        "nodes": {"msgs": {"type": "llm.Messages", "inputs": {"message": "hello there"}},
                  "chat": {"type": "llm.Chat", "inputs": {
                      "messages": "${msgs.messages}", "model": model, "temperature": 0,
                      "max_tokens": max_tokens}}},
        "outputs": {"text": "${chat.text}", "usage": "${chat.usage}", "model": "${chat.model}",
                    "finish": "${chat.finish_reason}"}})


@pytest.fixture(scope="session")
def tiny_lm(model_store, tmp_path_factory) -> str:
    folder = build_tiny_lm(model_store.folder("tiny-llama-test") / "weights")
    model_store.register(ModelManifest(
        id="tiny-llama-test", kind="llm", format="transformers", source="local",
        path=str(folder), backend="nodes.backends.transformers_lm:TransformersBackend",
        test=True, resources=ModelResources(memory=10 * 1024**2)))
    return "tiny-llama-test"


@pytest.fixture(scope="session")
def second_gguf(model_store) -> str:
    bundled = model_store.get("smollm2-135m-instruct")
    model_store.register(bundled.model_copy(update={
        "id": "my-gguf", "bundled": False, "source": "local", "size_bytes": 0}))
    return "my-gguf"


def test_a_transformers_folder_chats_and_streams(executor, tiny_lm):
    result = executor.run(chat_graph(tiny_lm), timeout=300)
    assert result.status == "success", result.error
    usage = result.outputs["usage"]
    assert result.outputs["model"] == tiny_lm
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 12
    assert result.outputs["text"]


def test_any_gguf_in_the_store_can_be_chosen(executor, second_gguf):
    result = executor.run(chat_graph(second_gguf), timeout=300)
    assert result.status == "success", result.error
    assert result.outputs["model"] == "my-gguf" and result.outputs["text"].strip()


def test_an_unknown_model_fails_the_node_with_the_installed_list(executor):
    result = executor.run(chat_graph("no-such-model"), timeout=300)
    assert result.status == "failed" and result.error.node_id == "chat"
    assert "no-such-model" in result.error.message
    assert "smollm2-135m-instruct" in result.error.message
