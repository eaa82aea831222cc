"""What the imagine graph costs on top of diffusers, and what host batching buys.

1. Overhead: ``graphs/imagine.yaml`` on the RayExecutor (the model on its Ray host actor,
   the PNG saved to the file store) against a direct diffusers call on the same tiny
   pipeline with the same settings, loaded in this process. Runs are interleaved and
   each figure is the median of --repeat runs; the ratio is graph / direct.
2. Batching: 8 concurrent imagine runs against 8 run one after another, on the same
   host, in each of the host's modes: per-image passes (the CPU default: every image
   its own pipeline pass, pixels exact whatever else runs), shared passes (a copy of the
   model registered with ``options: {image_passes: shared}``, the GPU default:
   concurrent calls with the same settings share one batched pipeline call), and
   ``options: {batching: false}`` (each call alone, no waiting for company).

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
    unbatched, shared = f"{TINY_SD}-unbatched", f"{TINY_SD}-shared"
    for copy, option in ((unbatched, {"batching": False}), (shared, {"image_passes": "shared"})):
        store.register(tiny.model_copy(update={"id": copy, "path": str(weights),
                                               "options": {**tiny.options, **option}}))
    pipeline = DiffusionPipeline.from_pretrained(str(weights), dtype=torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    graph = load_graph(REPO / "graphs" / "imagine.yaml")

    ensure_ray(dashboard=False, num_cpus=2)  # as `homepilot serve` starts it
    executor = RayExecutor(build_registry())
    try:
        direct_call(pipeline, args, 0)  # warm both: weights loaded, host actor started
        graph_run(executor, graph, args, 0, TINY_SD)
        graph_run(executor, graph, args, 0, unbatched)
        graph_run(executor, graph, args, 0, shared)
        direct, graphed = [], []
        for round_ in range(args.repeat):  # interleaved, so drift hits both alike
            direct.append(direct_call(pipeline, args, 100 + round_))
            graphed.append(graph_run(executor, graph, args, 100 + round_, TINY_SD))
        sequential, per_image, shared_times, unbatched_times = [], [], [], []
        for round_ in range(max(1, args.repeat // 2)):
            seed = 1000 * (round_ + 1)
            start = time.perf_counter()
            for i in range(args.requests):
                graph_run(executor, graph, args, seed + i, TINY_SD, f"picture {i}")
            sequential.append(time.perf_counter() - start)
            per_image.append(concurrent(executor, graph, args, TINY_SD, seed + 100))
            shared_times.append(concurrent(executor, graph, args, shared, seed + 200))
            unbatched_times.append(concurrent(executor, graph, args, unbatched, seed + 300))
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
    s = statistics.median(sequential)
    print(f"{args.requests} imagine runs, median of {len(sequential)}")
    print(f"  sequential               {s:8.2f} s   {args.requests / s:6.2f} images/s")
    for label, times in (("per-image passes", per_image), ("shared passes", shared_times),
                         ("batching off", unbatched_times)):
        t = statistics.median(times)
        print(f"  concurrent, {label:17}{t:6.2f} s   {args.requests / t:6.2f} images/s  "
              f"throughput {s / t:.2f}x sequential")
    if status:
        for model in (TINY_SD, shared):
            print(f"  {model} host runs: {status[model].get('batches')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
