"""POST /chat and the conversations API over DuckDB, with the bundled model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from engine.executors.local import LocalExecutor
from engine.settings import Settings, get_settings
from server.app import create_app


@pytest.fixture
def app_client(registry, tmp_path) -> Iterator[TestClient]:
    # A fresh home (database, files) per test; models come from the test home's store.
    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    (settings.home / "models").symlink_to(get_settings().models_dir)
    executor = LocalExecutor(registry)
    with TestClient(create_app(settings, registry, executor)) as client:
        yield client
    executor.close()


def chat(client: TestClient, message: str, **fields) -> dict:
    reply = client.post("/chat", json={"message": message, "textTemperature": 0,
                                       "textMaxTokens": 24, **fields})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_second_turn_sees_the_first(app_client):
    first = chat(app_client, "My favourite colour is turquoise.")
    assert set(first) == {"conversation_id", "text", "media"} and first["text"].strip()
    cid = first["conversation_id"]
    second = chat(app_client, "What is my favourite colour?", conversation_id=cid)
    assert second["conversation_id"] == cid
    runs = app_client.app.state.homepilot.runs.records()
    prompt = runs[-1].handle.result(5).outputs["messages"]
    assert prompt[0] == {"role": "user", "content": "My favourite colour is turquoise."}
    assert prompt[1] == {"role": "assistant", "content": first["text"]}
    assert prompt[-1] == {"role": "user", "content": "What is my favourite colour?"}
    stored = app_client.get(f"/conversations/{cid}/messages").json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "My favourite colour is turquoise."), ("assistant", first["text"]),
        ("user", "What is my favourite colour?"), ("assistant", second["text"])]


def test_conversations_are_listed_newest_first(app_client):
    older = chat(app_client, "Hello there.")["conversation_id"]
    newer = chat(app_client, "Good morning.")["conversation_id"]
    listed = app_client.get("/conversations").json()
    assert listed["ok"] is True
    ids = [c["conversation_id"] for c in listed["conversations"]]
    assert ids == [newer, older]
    assert listed["conversations"][0]["last_role"] == "assistant"
    assert app_client.get("/conversations", params={"limit": 1}).json()["conversations"][0][
        "conversation_id"] == newer


def test_search_ranks_matches_and_returns_snippets(app_client):
    cid = chat(app_client, "Our trip to Lisbon was lovely, the tram rides especially.")[
        "conversation_id"]
    chat(app_client, "Remind me to buy bread.", conversation_id=cid)
    found = app_client.get(f"/conversations/{cid}/search", params={"q": "Lisbon tram"})
    assert found.status_code == 200
    body = found.json()
    assert body["count"] >= 1 and body["query"] == "Lisbon tram"
    top = body["results"][0]
    assert top["role"] == "user" and "Lisbon" in top["content"] and "Lisbon" in top["snippet"]
    assert top["relevance_score"] > 0
    none = app_client.get(f"/conversations/{cid}/search", params={"q": "zeppelin"}).json()
    assert none["results"] == [] and none["count"] == 0


def test_deleting_a_conversation_removes_its_messages_and_media(app_client):
    state = app_client.app.state.homepilot
    cid = chat(app_client, "Keep this for a moment.")["conversation_id"]
    file_id = state.files.save(b"\x89PNG fake bytes", ".png")
    state.conversations.add(cid, [("assistant", "Here you go.",
                                   {"images": [f"/files/{file_id}"]})])
    gone = app_client.delete(f"/conversations/{cid}").json()
    assert gone == {"ok": True, "deleted": True, "deleted_messages": 3,
                    "deleted_media_files": 1, "conversation_id": cid}
    assert not state.files.path(file_id).exists()
    assert app_client.get(f"/conversations/{cid}/messages").json()["messages"] == []
    again = app_client.delete(f"/conversations/{cid}").json()
    assert again["deleted"] is False and again["deleted_messages"] == 0


def test_the_streaming_variant_sends_deltas_then_the_conversation(app_client):
    with app_client.stream("POST", "/chat/stream", json={
            "message": "Name two animals.", "textTemperature": 0, "textMaxTokens": 24}) as reply:
        frames = [json.loads(line[6:]) for line in reply.iter_lines()
                  if line.startswith("data: ")]
    deltas = [f["delta"] for f in frames if "delta" in f]
    done = frames[-1]
    assert done["done"] is True and deltas and "".join(deltas) == done["text"]
    stored = app_client.get(f"/conversations/{done['conversation_id']}/messages").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]


def test_bad_requests_are_clear_4xx_and_store_nothing(app_client):
    assert app_client.post("/chat", json={}).status_code == 422
    bogus = app_client.post("/chat", json={"message": "x", "provider": "bogus"})
    assert bogus.status_code == 422
    hot = app_client.post("/chat", json={"message": "x", "textTemperature": 9})
    assert hot.status_code == 422
    imagine = app_client.post("/chat", json={"message": "a red fox", "mode": "imagine",
                                             "imgBatchSize": 9})
    assert imagine.status_code == 422 and "imgBatchSize" in imagine.json()["message"]
    unknown = app_client.post("/chat", json={"message": "hi", "provider_model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "model_not_found"
    # More than the model's context window holds: the request's fault, not an llm_error 502.
    too_long = app_client.post("/chat", json={"message": "hello " * 5000})
    assert too_long.status_code == 400 and too_long.json()["code"] == "prompt_too_long"
    assert app_client.get("/conversations/x/search").status_code == 422
    assert app_client.get("/conversations", params={"limit": 0}).status_code == 422
    assert app_client.get("/conversations").json()["conversations"] == []


def test_a_personality_sets_the_system_prompt(app_client):
    chat(app_client, "Begin a tale.", personalityId="storyteller")
    prompt = app_client.app.state.homepilot.runs.records()[-1].handle.result(5).outputs[
        "messages"]
    assert prompt[0]["role"] == "system" and "storyteller" in prompt[0]["content"]
    gated = app_client.post("/chat", json={"message": "hi", "personalityId": "sexy"})
    assert gated.status_code == 403 and gated.json()["code"] == "adult_content_disabled"
    unknown = app_client.post("/chat", json={"message": "hi", "personalityId": "nobody"})
    assert unknown.status_code == 404 and "storyteller" in unknown.json()["message"]
