"""Restart safety: SIGKILL the server in the middle of a burst of writes, start it again,
and every acknowledged message is there."""

from __future__ import annotations

import os
import signal
import threading
import time

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


def test_a_run_the_server_was_killed_under_is_reported_interrupted_after_a_restart(
        tmp_path, test_pack):
    """SIGKILL (no chance to clean up) in the middle of a long animation, Ray's processes
    too: after a restart the run is 'failed: the server stopped', the half-written file
    its save was writing is gone, and nothing of it is served."""
    from tests.serving import descendants, living

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    source = _stored_picture(home)
    with homepilot_serve(home) as (base, process):
        started = httpx.post(f"{base}/graphs/animate/runs", timeout=60, json={"inputs": {
            "image": source, "frames": 8, "steps": 100, "width": 64, "height": 64,
            "seed": 1}}).json()
        run_id = started["run_id"]
        with httpx.stream("GET", f"{base}/runs/{run_id}/events", timeout=120) as events:
            assert any(line == "event: node_progress" for line in events.iter_lines())
        below = descendants(process.pid)
        # what a write cut short leaves behind (FileStore writes a temp name, then renames)
        partial = home / "files" / ".f_0123456789abcdef0123.mp4.tmp"
        partial.write_bytes(b"\x00\x00\x00\x18ftypmp42")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    # Ray's own daemons are in sessions of their own: they notice the driver is gone and
    # stop; whatever has not within 20 s is ours to stop, by pid.
    deadline = time.monotonic() + 20
    while living(below) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in living(below):
        os.kill(pid, signal.SIGKILL)
    files_before = sorted(p.name for p in (home / "files").iterdir())
    with homepilot_serve(home, "--executor", "local") as (base, _):
        run = httpx.get(f"{base}/runs/{run_id}", timeout=30)
        assert run.status_code == 200, run.text
        view = run.json()
        assert view["status"] == "failed" and view["outputs"] == {}
        assert view["error"]["error_type"] == "ServerStopped"
        assert "stopped while this run was going" in view["error"]["message"]
        assert httpx.get(f"{base}/runs/no-such-run", timeout=30).status_code == 404
    assert not partial.exists()
    # the animation's outputs never appeared: only the source (and nothing new) is stored
    assert sorted(p.name for p in (home / "files").iterdir()) == \
        [n for n in files_before if not n.startswith(".")]


def _stored_picture(home) -> str:
    import io

    from PIL import Image

    from engine.files import FileStore

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, format="PNG")
    return FileStore(home / "files").save(buffer.getvalue(), ".png")
