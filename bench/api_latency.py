"""Latency of the conversation endpoints under 32 concurrent clients, beside a bare
FastAPI endpoint served the same way (uvicorn in its own process, loopback).

The database is filled with --conversations conversations of --messages messages first.
Reported: p50 and p99 per endpoint, and the ratio to the bare endpoint.

Usage: python bench/api_latency.py [--requests 2000] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def fill(home: Path, conversations: int, messages: int) -> str:
    sys.path.insert(0, str(REPO))
    from server.storage.conversations import Conversations
    from server.storage.database import Database

    db = Database(home / "homepilot.duckdb")
    store = Conversations(db)
    for c in range(conversations):
        store.add(f"conv-{c}", [("user" if m % 2 == 0 else "assistant",
                                 f"message {m} of conversation {c} about topic {m % 7}", None)
                                for m in range(messages)])
    db.close()
    return "conv-0"


def start(command: list[str], env: dict[str, str], url: str) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command} did not come up")


async def load(url: str, requests: int, clients: int) -> list[float]:
    latencies: list[float] = []
    remaining = iter(range(requests))
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as c:
        async def worker() -> None:
            for _ in remaining:
                began = time.perf_counter()
                reply = await c.get(url)
                latencies.append(time.perf_counter() - began)
                assert reply.status_code == 200
        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="homepilot-bench-"))
    conversation = fill(home, args.conversations, args.messages)
    env = {**os.environ, "HOMEPILOT_HOME": str(home), "PYTHONPATH": str(REPO)}
    ours_port, bare_port = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    ours = start([str(bin_dir / "homepilot"), "serve", "--executor", "local", "--port",
                  str(ours_port)], env, f"http://127.0.0.1:{ours_port}/health")
    bare = start([str(bin_dir / "uvicorn"), "bench.bare_app:app", "--port", str(bare_port),
                  "--log-level", "warning"], {**env}, f"http://127.0.0.1:{bare_port}/bare")
    targets = {"bare FastAPI": f"http://127.0.0.1:{bare_port}/bare",
               "GET /conversations": f"http://127.0.0.1:{ours_port}/conversations",
               "GET /conversations/{id}/messages":
                   f"http://127.0.0.1:{ours_port}/conversations/{conversation}/messages"}
    results: dict[str, tuple[float, float]] = {}
    try:
        for name, url in targets.items():
            asyncio.run(load(url, args.clients * 4, args.clients))  # warm
            latencies = asyncio.run(load(url, args.requests, args.clients))
            results[name] = (percentile(latencies, 0.5), percentile(latencies, 0.99))
    finally:
        for process in (ours, bare):
            process.terminate()
            process.wait(30)
    base50, base99 = results["bare FastAPI"]
    print(f"{args.clients} concurrent clients, {args.requests} requests each, "
          f"{args.conversations} conversations x {args.messages} messages")
    for name, (p50, p99) in results.items():
        print(f"  {name:34} p50 {p50:7.2f} ms ({p50 / base50:4.1f}x)   "
              f"p99 {p99:7.2f} ms ({p99 / base99:4.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
