"""Embedding throughput with and without request batching on the model host.

64 concurrent requests, one sentence each, against the bundled all-MiniLM-L6-v2 on a
Ray model host actor: once with the host batching concurrent ``embed`` calls into shared
forward passes, once with batching turned off (the same model registered again with
``options: {batching: false}``, so it gets its own actor). The same is measured for the
in-process hosts the LocalExecutor uses. Figures: requests per second (median of
--repeat rounds, after a warm-up round) and the batched / unbatched ratio.

Usage: python bench/embed_batching.py [--requests 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SENTENCES = [f"Sentence number {i} is about {topic}." for i, topic in enumerate(
    ["cats", "the sea", "tax law", "a red fox", "bread", "rockets", "jazz", "winter"] * 16)]


def round_trip(handle: Any, requests: int, pool: ThreadPoolExecutor) -> float:
    """Seconds for ``requests`` concurrent one-sentence embeds; results are checked."""
    start = time.perf_counter()
    vectors = list(pool.map(lambda i: handle.call("embed", [SENTENCES[i]]), range(requests)))
    elapsed = time.perf_counter() - start
    assert all(len(v) == 1 and len(v[0]) == 384 for v in vectors)
    return elapsed


def measure(handle: Any, requests: int, repeat: int) -> float:
    with ThreadPoolExecutor(requests) as pool:
        round_trip(handle, requests, pool)  # warm: model loaded, threads started
        return statistics.median(requests / round_trip(handle, requests, pool)
                                 for _ in range(repeat))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HOMEPILOT_HOME", tempfile.mkdtemp(prefix="homepilot-bench-"))
    sys.path.insert(0, str(REPO))

    import ray

    from engine.models.local import LocalModels
    from engine.models.ray import RayModels
    from engine.models.store import ModelStore
    from engine.settings import get_settings
    from nodes.backends.bundled import MINILM, register_bundled

    store = ModelStore(get_settings().models_dir)
    register_bundled(store)
    bundled = store.get(MINILM)
    store.register(bundled.model_copy(update={
        "id": f"{MINILM}-unbatched", "options": {**bundled.options, "batching": False}}))
    figures: dict[str, float] = {}
    local = LocalModels(store, 2**40)
    try:
        figures["local batched"] = measure(local.get("embedding", MINILM), args.requests,
                                           args.repeat)
        figures["local unbatched"] = measure(local.get("embedding", f"{MINILM}-unbatched"),
                                             args.requests, args.repeat)
    finally:
        local.close()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        models = RayModels.start(store, 2**40)
        figures["ray batched"] = measure(models.get("embedding", MINILM), args.requests,
                                         args.repeat)
        figures["ray unbatched"] = measure(models.get("embedding", f"{MINILM}-unbatched"),
                                           args.requests, args.repeat)
        hosts = {h["id"]: h for h in models.status()}
        batches = hosts[MINILM]["batches"]["embed"]
    finally:
        ray.shutdown()
    print(f"{args.requests} concurrent one-sentence requests, median of {args.repeat}")
    for name, rate in figures.items():
        print(f"  {name:16} {rate:8.1f} requests/s")
    for where in ("local", "ray"):
        ratio = figures[f"{where} batched"] / figures[f"{where} unbatched"]
        print(f"  {where}: batched / unbatched = {ratio:.2f}x")
    print(f"  ray host: {batches['items']} items in {batches['batches']} forward passes "
          f"({batches['items'] / max(batches['batches'], 1):.1f} per pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
