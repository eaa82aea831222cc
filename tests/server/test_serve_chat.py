"""The core API on a real ``homepilot serve`` process with the bundled model."""

from __future__ import annotations

import httpx

from engine.settings import get_settings
from tests.serving import homepilot_serve


def test_a_conversation_on_a_real_server(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    with homepilot_serve(home, "--executor", "local") as (base, _):
        with httpx.Client(base_url=base, timeout=120) as client:
            def chat(message: str, conversation_id: str | None = None) -> dict:
                reply = client.post("/chat", json={"message": message, "textTemperature": 0,
                                                   "textMaxTokens": 20,
                                                   "conversation_id": conversation_id})
                assert reply.status_code == 200, reply.text
                return reply.json()
            first = chat("I keep bees in my garden in Porto.")
            cid = first["conversation_id"]
            second = chat("Where is my garden?", cid)
            stored = client.get(f"/conversations/{cid}/messages").json()["messages"]
            # The second turn's prompt held the first: it is the stored history before it.
            assert [m["content"] for m in stored] == [
                "I keep bees in my garden in Porto.", first["text"],
                "Where is my garden?", second["text"]]
            listed = client.get("/conversations").json()["conversations"]
            assert [c["conversation_id"] for c in listed] == [cid]
            hits = client.get(f"/conversations/{cid}/search", params={"q": "bees"}).json()
            assert hits["count"] >= 1 and "bees" in hits["results"][0]["snippet"]
            gone = client.delete(f"/conversations/{cid}").json()
            assert gone["deleted_messages"] == 4
            assert client.get("/conversations").json()["conversations"] == []
