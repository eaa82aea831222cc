"""The bundled chat model and embedder through graphs, on both executors."""

from __future__ import annotations

import re
from pathlib import Path

from engine.events import Event
from engine.graph import Graph
from engine.loader import load_graph

CHAT = load_graph(Path(__file__).resolve().parents[2] / "graphs" / "chat.yaml")


def looks_english(text: str) -> bool:
    ascii_share = sum(c.isascii() for c in text) / max(len(text), 1)
    return ascii_share > 0.95 and re.search(r"\b(the|is|of|a|in)\b", text.lower()) is not None


def host(executor, model_id: str) -> dict:
    return next(h for h in executor.model_status() if h["id"] == model_id)


def test_the_bundled_model_answers_in_english(executor):
    result = executor.run(CHAT, {"message": "What is the capital of France?",
                                 "temperature": 0, "max_tokens": 40}, timeout=300)
    assert result.status == "success", result.error
    text = result.outputs["text"]
    assert text.strip() and looks_english(text), text
    assert result.outputs["model"] == "smollm2-135m-instruct"


def test_a_reply_streams_in_several_chunks(executor):
    events: list[Event] = []
    result = executor.run(CHAT, {"message": "Tell me a short story about a cat.",
                                 "temperature": 0, "max_tokens": 96},
                          listener=events.append, timeout=300)
    text = result.outputs["text"]
    chunks = [e.data["text"] for e in events if e.type == "node_progress" and "text" in e.data]
    # Under Ray, deltas are paced (50 ms apart) and may carry several tokens each.
    assert len(chunks) >= 3 and "".join(chunks) == text
    usage = result.outputs["usage"]
    assert usage["completion_tokens"] >= len(chunks) and usage["prompt_tokens"] > 0


def test_a_second_request_uses_the_resident_model(executor):
    executor.run(CHAT, {"message": "Say hello.", "temperature": 0, "max_tokens": 8},
                 timeout=300)
    before = host(executor, "smollm2-135m-instruct")
    result = executor.run(CHAT, {"message": "Name a colour.", "temperature": 0,
                                 "max_tokens": 8}, timeout=300)
    after = host(executor, "smollm2-135m-instruct")
    assert result.status == "success"
    assert after["requests"] == before["requests"] + 1
    assert after["loaded_since"] == before["loaded_since"]  # the same load, not a reload


def test_earlier_turns_reach_the_model(executor):
    history = [{"role": "user", "content": "My name is Zoe."},
               {"role": "assistant", "content": "Nice to meet you, Zoe."}]
    result = executor.run(CHAT, {"message": "What is my name?", "history": history,
                                 "temperature": 0, "max_tokens": 20}, timeout=300)
    assert result.outputs["messages"] == [*history,
                                          {"role": "user", "content": "What is my name?"}]


def test_embeddings_rank_the_closest_text_first(executor):
    graph = Graph.model_validate({
        "nodes": {"docs": {"type": "embed.Text", "inputs": {
                      "texts": ["The cat sleeps on the sofa.", "Stock markets fell today.",
                                "A recipe for tomato soup."]}},
                  "query": {"type": "embed.Text", "inputs": {"texts": "a kitten napping"}},
                  "top": {"type": "embed.TopK", "inputs": {"query": "${query.vectors}",
                                                           "candidates": "${docs.vectors}",
                                                           "k": 2}}},
        "outputs": {"indices": "${top.indices}", "scores": "${top.scores}",
                    "dimensions": "${docs.dimensions}"}})
    result = executor.run(graph, timeout=300)
    assert result.status == "success", result.error
    assert result.outputs["dimensions"] == 384
    assert result.outputs["indices"][0] == 0
    first, second = result.outputs["scores"]
    assert first > second


def test_a_stop_string_ends_the_reply_before_it(executor):
    inputs = {"message": "What is the capital of France?", "temperature": 0, "max_tokens": 40}
    full = executor.run(CHAT, inputs, timeout=300).outputs["text"]
    assert "Paris" in full
    stopped = executor.run(CHAT, {**inputs, "stop": ["Paris"]}, timeout=300).outputs
    assert "Paris" not in stopped["text"] and full.startswith(stopped["text"].rstrip())
    assert stopped["finish_reason"] == "stop"
