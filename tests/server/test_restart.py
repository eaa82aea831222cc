"""Restart safety: SIGKILL the server in the middle of a burst of writes, start it again,
and every acknowledged message is there."""

from __future__ import annotations

import os
import signal
import threading

import httpx

from engine.settings import get_settings
from tests.serving import homepilot_serve


def test_acknowledged_messages_survive_a_sigkill(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    acknowledged: list[tuple[str, str, str]] = []  # (conversation, message, reply)
    stop = threading.Event()

    with homepilot_serve(home, "--executor", "local") as (base, process):
        def burst() -> None:
            with httpx.Client(base_url=base, timeout=60) as client:
                for i in range(200):
                    if stop.is_set():
                        return
                    message = f"note number {i}"
                    try:
                        reply = client.post("/chat", json={"message": message,
                                                           "textMaxTokens": 3,
                                                           "textTemperature": 0})
                    except httpx.HTTPError:
                        return  # the server died under this request: not acknowledged
                    if reply.status_code == 200:
                        body = reply.json()
                        acknowledged.append((body["conversation_id"], message, body["text"]))
        writers = [threading.Thread(target=burst) for _ in range(3)]
        for writer in writers:
            writer.start()
        while len(acknowledged) < 12 and all(w.is_alive() for w in writers):
            threading.Event().wait(0.05)  # let the burst get going, then pull the plug
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        stop.set()
        for writer in writers:
            writer.join(60)
    assert len(acknowledged) >= 12

    with homepilot_serve(home, "--executor", "local") as (base, _):
        with httpx.Client(base_url=base, timeout=60) as client:
            listed = client.get("/conversations", params={"limit": 200}).json()["conversations"]
            known = {c["conversation_id"] for c in listed}
            for conversation_id, message, text in acknowledged:
                assert conversation_id in known
                stored = client.get(f"/conversations/{conversation_id}/messages").json()
                assert [(m["role"], m["content"]) for m in stored["messages"]] == [
                    ("user", message), ("assistant", text)]
