"""What the imagine graph costs on top of diffusers, and what host batching buys.

1. Overhead: ``graphs/imagine.yaml`` on the RayExecutor (the model on its Ray host actor,
   the PNG saved to the file store) against a direct diffusers call on the same tiny
   pipeline with the same settings, loaded in this process. Runs are interleaved and
   each figure is the median of --repeat runs; the ratio is graph / direct.
2. Batching: 8 concurrent imagine runs against 8 run one after another, on the same
   host. The host groups concurrent calls with the same settings into shared pipeline
   calls; the same 8 concurrent runs against a copy of the model registered with
   ``options: {batching: false}`` show what concurrency alone gives.

The test pack is built into a throwaway home first. Both sides use the same torch
thread count (the cores are shared: one side idles while the other runs).

Usage: python bench/imagine_overhead.py [--steps 20] [--size 128] [--repeat 5]
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


def direct_call(pipeline: Any, args: argparse.Namespace, seed: int) -> float:
    import torch

    start = time.perf_counter()
    output = pipeline(prompt=["a red fox in a green field"], negative_prompt=[""],
                      width=args.size, height=args.size, num_inference_steps=args.steps,
                      guidance_scale=7.0,
                      generator=[torch.Generator(device="cpu").manual_seed(seed)])
    assert output.images[0].size == (args.size, args.size)
    return time.perf_counter() - start


def graph_run(executor: Any, graph: Any, args: argparse.Namespace, seed: int,
              model: str, prompt: str = "a red fox in a green field") -> float:
    start = time.perf_counter()
    result = executor.run(graph, {"prompt": prompt, "width": args.size, "height": args.size,
                                  "steps": args.steps, "cfg": 7.0, "seed": seed,
                                  "model": model}, timeout=600)
    elapsed = time.perf_counter() - start
    assert result.status == "success", result.error
    return elapsed


def concurrent(executor: Any, graph: Any, args: argparse.Namespace, model: str,
               first_seed: int) -> float:
    with ThreadPoolExecutor(args.requests) as pool:
        start = time.perf_counter()
        list(pool.map(lambda i: graph_run(executor, graph, args, first_seed + i, model,
                                          f"picture {i}"), range(args.requests)))
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("HOMEPILOT_HOME", tempfile.mkdtemp(prefix="homepilot-bench-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))

    import ray
    import torch
    from diffusers import DiffusionPipeline

    from engine.executors.ray import RayExecutor, ensure_ray
    from engine.loader import load_graph
    from engine.models.store import ModelStore
    from engine.settings import get_settings
    from nodes import build_registry
    from nodes.testpack.install import TINY_SD, install_test_pack

    store = ModelStore(get_settings().models_dir)
    install_test_pack(store)
    tiny = store.get(TINY_SD)
    weights = store.weights(tiny)
    unbatched = f"{TINY_SD}-unbatched"
    store.register(tiny.model_copy(update={"id": unbatched, "path": str(weights),
                                           "options": {**tiny.options, "batching": False}}))
    pipeline = DiffusionPipeline.from_pretrained(str(weights), dtype=torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    graph = load_graph(REPO / "graphs" / "imagine.yaml")

    ensure_ray(dashboard=False, num_cpus=2)  # as `homepilot serve` starts it
    executor = RayExecutor(build_registry())
    try:
        direct_call(pipeline, args, 0)  # warm both: weights loaded, host actor started
        graph_run(executor, graph, args, 0, TINY_SD)
        graph_run(executor, graph, args, 0, unbatched)
        direct, graphed = [], []
        for round_ in range(args.repeat):  # interleaved, so drift hits both alike
            direct.append(direct_call(pipeline, args, 100 + round_))
            graphed.append(graph_run(executor, graph, args, 100 + round_, TINY_SD))
        sequential, batched, unbatched_times = [], [], []
        for round_ in range(max(1, args.repeat // 2)):
            seed = 1000 * (round_ + 1)
            start = time.perf_counter()
            for i in range(args.requests):
                graph_run(executor, graph, args, seed + i, TINY_SD, f"picture {i}")
            sequential.append(time.perf_counter() - start)
            batched.append(concurrent(executor, graph, args, TINY_SD, seed + 100))
            unbatched_times.append(concurrent(executor, graph, args, unbatched, seed + 200))
        status = {i["id"]: i for i in executor.model_status()}
    finally:
        executor.close()
        ray.shutdown()

    d, g = statistics.median(direct), statistics.median(graphed)
    print(f"imagine, {args.steps} steps at {args.size}x{args.size}, tiny SD, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeat}")
    print(f"  direct diffusers call    {d * 1000:8.1f} ms")
    print(f"  imagine graph on Ray     {g * 1000:8.1f} ms   ratio {g / d:.3f}x "
          f"(target < 1.1x)")
    s, b, u = (statistics.median(x) for x in (sequential, batched, unbatched_times))
    print(f"{args.requests} imagine runs, median of {len(sequential)}")
    print(f"  sequential               {s:8.2f} s   {args.requests / s:6.2f} images/s")
    print(f"  concurrent, batched      {b:8.2f} s   {args.requests / b:6.2f} images/s  "
          f"throughput {s / b:.2f}x sequential")
    print(f"  concurrent, unbatched    {u:8.2f} s   {args.requests / u:6.2f} images/s  "
          f"throughput {s / u:.2f}x sequential")
    if status:
        print(f"  host's grouped runs: {status[TINY_SD].get('batches')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
