"""A mixed load on a running server: chat, conversations, uploads, imagine, runs, edit
sessions, keys, at N concurrent clients. Every acknowledged write is recorded so that it
can be checked afterwards. Used by tests/server/test_load.py and bench/api_latency.py.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# Share of each kind of request in the mix (they sum to 1).
MIX = {"chat": 0.07, "imagine": 0.03, "upload": 0.10, "run": 0.10, "edit_session": 0.05,
       "conversations": 0.20, "messages": 0.15, "search": 0.05, "api_key": 0.03,
       "file": 0.12, "providers": 0.10}
CONVERSATIONS = 12  # chats spread over this many conversations


@dataclass
class Acks:
    """What the server said it stored, to be found again afterwards."""

    chats: list[tuple[str, str]] = field(default_factory=list)      # (conversation, message)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)  # (/files url, bytes)
    pictures: list[str] = field(default_factory=list)               # imagine results
    runs: list[tuple[str, str]] = field(default_factory=list)       # (run id, text output)
    sessions: list[tuple[str, str]] = field(default_factory=list)   # (session, original url)
    key_saved: bool = False


@dataclass
class Report:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    acks: Acks = field(default_factory=Acks)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def percentile(self, q: float, kind: str | None = None) -> float:
        values = sorted(v for k, vs in self.latencies.items() if kind in (None, k) for v in vs)
        return values[min(int(q * len(values)), len(values) - 1)] * 1000 if values else 0.0


def png(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(
        buffer, format="PNG")
    return buffer.getvalue()


class Mix:
    """One request of each kind per method; each returns None or an error description."""

    def __init__(self, client: httpx.AsyncClient, acks: Acks, rng: random.Random) -> None:
        self.client, self.acks, self.rng = client, acks, rng

    async def chat(self, i: int) -> str | None:
        conversation = f"load-{i % CONVERSATIONS}"
        message = f"Say one word, number {i}."
        reply = await self.client.post("/chat", json={
            "message": message, "conversation_id": conversation, "textMaxTokens": 6})
        if reply.status_code != 200:
            return f"chat {reply.status_code} {reply.text[:200]}"
        self.acks.chats.append((conversation, message))
        return None

    async def imagine(self, i: int) -> str | None:
        reply = await self.client.post("/chat", json={
            "message": f"a small boat {i}", "mode": "imagine", "imgWidth": 64,
            "imgHeight": 64, "imgSteps": 2, "imgSeed": i, "imgPreset": "custom",
            "conversation_id": f"load-pictures-{i % 3}"})
        if reply.status_code != 200:
            return f"imagine {reply.status_code} {reply.text[:200]}"
        self.acks.pictures.extend(reply.json()["media"]["images"])
        return None

    async def upload(self, i: int) -> str | None:
        data = png(i)
        reply = await self.client.post("/upload", files={"file": (f"{i}.png", data,
                                                                  "image/png")})
        if reply.status_code != 201:
            return f"upload {reply.status_code} {reply.text[:200]}"
        self.acks.uploads.append(("/files/" + reply.json()["url"].rsplit("/files/", 1)[1],
                                  data))
        return None

    async def run(self, i: int) -> str | None:
        graph = {"nodes": {"hello": {"type": "text.Concat",
                                     "inputs": {"a": "load", "b": str(i)}}},
                 "outputs": {"text": "${hello.text}"}}
        reply = await self.client.post("/runs", json={"graph": graph, "wait": True})
        if reply.status_code != 201 or reply.json()["status"] != "success":
            return f"run {reply.status_code} {reply.text[:200]}"
        self.acks.runs.append((reply.json()["run_id"], reply.json()["outputs"]["text"]))
        return None

    async def edit_session(self, i: int) -> str | None:
        if not self.acks.uploads:
            return await self.upload(i)
        url = self.rng.choice(self.acks.uploads)[0]
        session = f"load-session-{i}"
        reply = await self.client.post(f"/v1/edit-sessions/{session}/image",
                                       json={"image_url": url})
        if reply.status_code != 200:
            return f"edit session {reply.status_code} {reply.text[:200]}"
        self.acks.sessions.append((session, reply.json()["original_image_url"]))
        return None

    async def conversations(self, i: int) -> str | None:
        return _expect(await self.client.get("/conversations", params={"limit": 20}), 200)

    async def messages(self, i: int) -> str | None:
        return _expect(await self.client.get(
            f"/conversations/load-{i % CONVERSATIONS}/messages"), 200)

    async def search(self, i: int) -> str | None:
        return _expect(await self.client.get(
            f"/conversations/load-{i % CONVERSATIONS}/search", params={"q": "word"}), 200)

    async def api_key(self, i: int) -> str | None:
        reply = await self.client.post("/settings/api-keys", json={
            "provider": "civitai", "key": f"load-key-{i:08d}"})
        if reply.status_code != 200:
            return f"api key {reply.status_code} {reply.text[:200]}"
        self.acks.key_saved = True
        return None

    async def file(self, i: int) -> str | None:
        if not self.acks.uploads:
            return await self.upload(i)
        url, data = self.rng.choice(self.acks.uploads)
        reply = await self.client.get(url)
        if reply.status_code != 200 or reply.content != data:
            return f"file {url} {reply.status_code}"
        return None

    async def providers(self, i: int) -> str | None:
        return _expect(await self.client.get("/providers"), 200)


def _expect(reply: httpx.Response, status: int) -> str | None:
    return None if reply.status_code == status else \
        f"{reply.request.method} {reply.request.url.path} {reply.status_code}"


async def run_mix(base: str, total: int = 2000, clients: int = 32, seed: int = 7,
                  mix: dict[str, float] | None = None) -> Report:
    """``total`` requests drawn from ``mix`` by ``clients`` concurrent clients."""
    rng = random.Random(seed)
    weights = mix or MIX
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=total)
    report = Report()
    queue = iter(enumerate(kinds))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        actions = Mix(client, report.acks, rng)

        async def worker() -> None:
            for i, kind in queue:
                request: Callable[[int], Awaitable[str | None]] = getattr(actions, kind)
                began = time.perf_counter()
                try:
                    error = await request(i)
                except httpx.HTTPError as exc:
                    error = f"{kind}: {type(exc).__name__}: {exc}"
                report.latencies.setdefault(kind, []).append(time.perf_counter() - began)
                if error:
                    report.errors.append(error)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        report.seconds = time.perf_counter() - started
    return report


def missing_writes(base: str, acks: Acks) -> list[str]:
    """Every acknowledged write that cannot be found now (empty when all are there)."""
    lost: list[str] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        stored: dict[str, set[str]] = {}
        for conversation, message in acks.chats:
            if conversation not in stored:
                found = client.get(f"/conversations/{conversation}/messages",
                                   params={"limit": 1000}).json()["messages"]
                stored[conversation] = {m["content"] for m in found if m["role"] == "user"}
            if message not in stored[conversation]:
                lost.append(f"chat message {message!r} in {conversation}")
        for url, data in acks.uploads:
            if client.get(url).content != data:
                lost.append(f"upload {url}")
        lost += [f"picture {url}" for url in acks.pictures
                 if client.get(url).status_code != 200]
        for run_id, text in acks.runs:
            view: dict[str, Any] = client.get(f"/runs/{run_id}").json()
            if view.get("outputs", {}).get("text") != text:
                lost.append(f"run {run_id}")
        for session, original in acks.sessions:
            if client.get(f"/v1/edit-sessions/{session}").json().get(
                    "original_image_url") != original:
                lost.append(f"edit session {session}")
        if acks.key_saved and not client.get("/settings/api-keys").json()["keys"][
                "civitai"]["configured"]:
            lost.append("the civitai key")
    return lost
