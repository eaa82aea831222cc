"""2,000 mixed requests (chat, conversations, uploads, imagine with the test pack, runs,
edit sessions, keys) at 32 concurrent clients against a real server on loopback: no
errors, and every write the server acknowledged is there afterwards."""

from __future__ import annotations

import asyncio

from engine.executors.local import LocalExecutor
from engine.files import FileStore
from engine.settings import Settings, get_settings
from server.app import create_app
from tests.loadmix import missing_writes, run_mix
from tests.serving import serving


def test_2000_mixed_requests_at_32_clients_lose_nothing(registry, tmp_path, test_pack):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    # The executor writes where this app serves files from.
    executor = LocalExecutor(registry, files=FileStore(home / "files"))
    app = create_app(Settings(home=home), registry, executor)
    try:
        with serving(app) as base:
            report = asyncio.run(run_mix(base, total=2000, clients=32))
            lost = missing_writes(base, report.acks)
            lag = app.state.homepilot.loop_lag.stats()
    finally:
        executor.close()
    kinds = ", ".join(f"{k} {len(v)} (p99 {report.percentile(0.99, k):.0f} ms)"
                      for k, v in sorted(report.latencies.items()))
    print(f"\n{report.requests} requests in {report.seconds:.1f} s: p50 "
          f"{report.percentile(0.5):.1f} ms, p99 {report.percentile(0.99):.1f} ms; "
          f"event loop lag {lag}\n{kinds}")
    assert report.requests == 2000
    assert report.errors == []
    acks = report.acks
    assert acks.chats and acks.pictures and acks.uploads and acks.runs and acks.sessions
    assert lost == []
