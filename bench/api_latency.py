"""Latency under 32 concurrent clients, beside a bare FastAPI endpoint served the same way
(uvicorn in its own process, loopback), all in one run:

1. the mixed load of tests/loadmix.py (chat, conversations, uploads, imagine with the test
   pack, runs, edit sessions, keys, file reads) against `homepilot serve` as users run it
   (Ray executor, model hosts in their own processes): p50/p99 overall and per kind, every
   acknowledged write checked afterwards, and the server's own event-loop lag over the
   load (GET /engine/status; target: p99 under 20 ms);
2. GET /conversations and GET /conversations/{id}/messages alone (--conversations
   conversations of --messages messages stored first).

Usage: python bench/api_latency.py [--requests 2000] [--clients 32] [--no-mixed]
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
from typing import Any

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
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed load")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="homepilot-bench-"))
    conversation = fill(home, args.conversations, args.messages)
    env = {**os.environ, "HOMEPILOT_HOME": str(home), "PYTHONPATH": str(REPO),
           "RAY_ADDRESS": "", "HOMEPILOT_RAY_DASHBOARD": "false"}
    bin_dir = Path(sys.executable).parent
    if not args.no_mixed:
        subprocess.run([str(bin_dir / "homepilot"), "models", "install-test-pack"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours_port, bare_port = free_port(), free_port()
    ours = start([str(bin_dir / "homepilot"), "serve", "--port", str(ours_port)], env,
                 f"http://127.0.0.1:{ours_port}/health")
    bare = start([str(bin_dir / "uvicorn"), "bench.bare_app:app", "--port", str(bare_port),
                  "--log-level", "warning"], {**env}, f"http://127.0.0.1:{bare_port}/bare")
    base = f"http://127.0.0.1:{ours_port}"
    targets = {"bare FastAPI": f"http://127.0.0.1:{bare_port}/bare",
               "GET /conversations": f"{base}/conversations",
               "GET /conversations/{id}/messages":
                   f"{base}/conversations/{conversation}/messages"}
    results: dict[str, tuple[float, float]] = {}
    mixed = None
    try:
        asyncio.run(load(targets["bare FastAPI"], args.clients * 4, args.clients))  # warm
        latencies = asyncio.run(load(targets["bare FastAPI"], args.requests, args.clients))
        results["bare FastAPI"] = (percentile(latencies, 0.5), percentile(latencies, 0.99))
        if not args.no_mixed:
            mixed = mixed_load(base, args)
        for name, url in list(targets.items())[1:]:
            asyncio.run(load(url, args.clients * 4, args.clients))  # warm
            latencies = asyncio.run(load(url, args.requests, args.clients))
            results[name] = (percentile(latencies, 0.5), percentile(latencies, 0.99))
    finally:
        for process in (ours, bare):
            process.terminate()
            process.wait(30)
    base50, base99 = results["bare FastAPI"]
    print(f"{args.clients} concurrent clients, {args.requests} requests each")
    if mixed is not None:
        report, lost, lag = mixed
        p50, p99 = report.percentile(0.5), report.percentile(0.99)
        print(f"  mixed load: {report.requests} requests in {report.seconds:.1f} s, "
              f"{len(report.errors)} errors, {len(lost)} acknowledged writes missing")
        print(f"  {'mixed load, all kinds':34} p50 {p50:7.2f} ms ({p50 / base50:5.1f}x)   "
              f"p99 {p99:8.2f} ms ({p99 / base99:5.1f}x)")
        for kind in sorted(report.latencies):
            k50, k99 = report.percentile(0.5, kind), report.percentile(0.99, kind)
            print(f"    {kind:32} p50 {k50:7.2f} ms   p99 {k99:8.2f} ms   "
                  f"({len(report.latencies[kind])} requests)")
        print(f"  event-loop lag over the mixed load: p50 {lag['p50_ms']} ms, "
              f"p99 {lag['p99_ms']} ms (target < 20 ms), max {lag['max_ms']} ms")
    print(f"  {args.conversations} conversations x {args.messages} messages stored:")
    for name, (p50, p99) in results.items():
        print(f"  {name:34} p50 {p50:7.2f} ms ({p50 / base50:4.1f}x)   "
              f"p99 {p99:7.2f} ms ({p99 / base99:4.1f}x)")
    return 0


def mixed_load(base: str, args: argparse.Namespace) -> tuple[Any, list[str], dict[str, Any]]:
    """The mixed load, the writes it lost, and the server's event-loop lag over it (the
    lag window holds the last 300 s: about the length of the load)."""
    sys.path.insert(0, str(REPO))
    from tests.loadmix import missing_writes, run_mix

    httpx.post(f"{base}/chat", json={"message": "warm up", "textMaxTokens": 4}, timeout=300)
    report = asyncio.run(run_mix(base, total=args.requests, clients=args.clients))
    lag = httpx.get(f"{base}/engine/status", timeout=60).json()["event_loop_lag"]
    return report, missing_writes(base, report.acks), lag


if __name__ == "__main__":
    sys.exit(main())
