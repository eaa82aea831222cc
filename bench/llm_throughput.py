"""Chat throughput: raw llama-cpp-python vs the chat graph on Ray vs /v1 streaming.

The same bundled model (SmolLM2-135M GGUF), prompt, settings (greedy, seed 0) and token
budget go through:

  (a) raw   llama-cpp-python ``create_chat_completion(stream=True)`` in this process;
  (b) graph ``graphs/chat.yaml`` on the RayExecutor (the model on its resident host actor),
            timed by the events this process receives;
  (c) api   ``POST /v1/chat/completions`` with ``stream: true`` on a real server (uvicorn on
            127.0.0.1, same RayExecutor), timed by the SSE chunks the client receives.

Tokens per second = completion tokens / wall time from request to last token.
Time to first token (TTFT) = request to first content token, as the caller sees it.
Every path is warmed once (model loaded, host resident), then the median of --repeat runs.
Targets: (b) and (c) at least 0.9x raw tokens/s; TTFT within 50 ms of raw.

Usage: python bench/llm_throughput.py [--tokens 128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Write a short story about a robot who learns to paint. Use many details."


Timing = tuple[float, float, float, int]  # first token, last token, end (from start), tokens


def raw_path(model: Any, tokens: int) -> Timing:
    start = time.perf_counter()
    first = last = None
    count = 0
    for chunk in model.create_chat_completion(
            messages=[{"role": "user", "content": PROMPT}], temperature=0, seed=0,
            max_tokens=tokens, stream=True):
        if chunk["choices"][0].get("delta", {}).get("content"):
            last = time.perf_counter()
            first = first or last
            count += 1
    end = time.perf_counter()
    return (first or end) - start, (last or end) - start, end - start, count


def graph_path(executor: Any, graph: Any, tokens: int) -> Timing:
    executor.clear_cache()  # greedy replies are deterministic: the cache would answer
    seen: list[float] = []

    def listen(event: Any) -> None:
        if event.type == "node_progress" and event.data.get("text"):
            seen.append(time.perf_counter())
    start = time.perf_counter()
    result = executor.run(graph, {"message": PROMPT, "temperature": 0, "seed": 0,
                                  "max_tokens": tokens}, listener=listen, timeout=600)
    end = time.perf_counter()
    assert result.status == "success", result.error
    return (seen[0] - start, seen[-1] - start, end - start,
            result.outputs["usage"]["completion_tokens"])


def api_path(executor: Any, base: str, tokens: int) -> Timing:
    import httpx

    executor.clear_cache()
    body = {"model": "default", "stream": True, "temperature": 0, "seed": 0,
            "max_tokens": tokens, "messages": [{"role": "user", "content": PROMPT}]}
    first = last = None
    count = 0
    start = time.perf_counter()
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=600) as reply:
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"][0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):  # the last chunk; chunks may carry several tokens
                count = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return (first or end) - start, (last or end) - start, end - start, count


def median_of(runs: list[Timing]) -> dict[str, float]:
    """TTFT; tokens/s over the whole request; decode tokens/s from first to last token
    (where chunks carry several tokens, the last chunk's arrival closes the span)."""
    return {"ttft_ms": statistics.median(r[0] for r in runs) * 1000,
            "tokens_per_s": statistics.median(r[3] / r[2] for r in runs),
            "decode_per_s": statistics.median((r[3] - 1) / max(r[1] - r[0], 1e-9)
                                              for r in runs),
            "tokens": statistics.median(r[3] for r in runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HOMEPILOT_HOME", tempfile.mkdtemp(prefix="homepilot-bench-"))
    sys.path.insert(0, str(REPO))

    import ray
    from llama_cpp import Llama

    from engine.executors.ray import RayExecutor
    from engine.loader import load_graph
    from engine.models.store import ModelStore
    from engine.settings import Settings, get_settings
    from nodes import build_registry
    from nodes.backends.bundled import register_bundled
    from server.app import create_app
    from tests.serving import serving

    store = ModelStore(get_settings().models_dir)
    register_bundled(store)
    manifest = store.get("smollm2-135m-instruct")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    executor = RayExecutor(build_registry([]))
    graph = load_graph(REPO / "graphs" / "chat.yaml")
    raw = Llama(model_path=manifest.path, n_ctx=4096, n_threads=os.cpu_count() or 2,
                chat_format="chatml", verbose=False)
    results: dict[str, dict[str, float]] = {}
    try:
        with serving(create_app(Settings(home=get_settings().home), executor.registry,
                                executor)) as base:
            paths = {"raw": lambda: raw_path(raw, args.tokens),
                     "graph": lambda: graph_path(executor, graph, args.tokens),
                     "api": lambda: api_path(executor, base, args.tokens)}
            for run in paths.values():
                run()  # warm: model loaded, host resident, workers started
            runs: dict[str, list[Timing]] = {k: [] for k in paths}
            for _ in range(args.repeat):  # interleaved, so drift hits all paths alike
                for name, run in paths.items():
                    runs[name].append(run())
            results = {name: median_of(r) for name, r in runs.items()}
    finally:
        executor.close()
        ray.shutdown()
    report(results)
    return 0


def report(results: dict[str, dict[str, float]]) -> None:
    raw = results["raw"]
    print(f"{'path':6} {'tokens':>6} {'tok/s':>7} {'ratio':>6} {'decode/s':>9} {'ratio':>6} "
          f"{'TTFT ms':>8} {'vs raw':>7}")
    for name, figures in results.items():
        whole = figures["tokens_per_s"] / raw["tokens_per_s"]
        decode = figures["decode_per_s"] / raw["decode_per_s"]
        extra = figures["ttft_ms"] - raw["ttft_ms"]
        print(f"{name:6} {figures['tokens']:6.0f} {figures['tokens_per_s']:7.1f} {whole:5.2f}x "
              f"{figures['decode_per_s']:9.1f} {decode:5.2f}x {figures['ttft_ms']:8.1f} "
              f"{extra:+7.1f}")
    for name in ("graph", "api"):
        whole = results[name]["tokens_per_s"] / raw["tokens_per_s"]
        decode = results[name]["decode_per_s"] / raw["decode_per_s"]
        extra = results[name]["ttft_ms"] - raw["ttft_ms"]
        print(f"[{'PASS' if decode >= 0.9 else 'MISS'}] {name} decode tokens/s {decode:.2f}x raw "
              f"(target >= 0.9x); whole request {whole:.2f}x")
        print(f"[{'PASS' if extra <= 50 else 'MISS'}] {name} TTFT {extra:+.1f} ms vs raw "
              f"(target <= +50 ms)")


if __name__ == "__main__":
    sys.exit(main())
