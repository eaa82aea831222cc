"""What ComfyUI's core-node graph costs against our own imagine graph, and model sharing.

1. txt2img through ``graphs/comfy/txt2img.json`` (CheckpointLoaderSimple → CLIPTextEncode
   ×2 → EmptyLatentImage → KSampler → VAEDecode → SaveImage) against
   ``graphs/imagine.yaml`` with the same settings (checkpoint, size, steps, cfg, seed,
   ComfyUI's euler/karras), both on the RayExecutor. Runs are interleaved; each figure is
   the median of --repeat runs; the ratio is core graph / imagine. For reference, imagine
   with diffusers' own pipeline ("default" sampler) is timed too.
2. Two different graphs naming the same checkpoint: the model store's host for it is
   started once and serves both (hosts counted before and after, and its load time).

The test pack is built into a throwaway home first; the single-file SD1 checkpoint
(``test-sd-tiny-ckpt``, an 8x VAE like real SD1) is the model.

Usage: python bench/comfy_core.py [--steps 20] [--size 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def timed(executor: Any, graph: Any, inputs: dict[str, Any]) -> float:
    start = time.perf_counter()
    result = executor.run(graph, inputs, timeout=600)
    elapsed = time.perf_counter() - start
    assert result.status == "success", result.error
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HOMEPILOT_HOME", tempfile.mkdtemp(prefix="homepilot-bench-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))

    import ray
    import torch

    from engine.executors.ray import RayExecutor, ensure_ray
    from engine.loader import load_graph
    from engine.models.store import ModelStore
    from engine.settings import get_settings
    from nodes import build_registry
    from nodes.testpack.install import TINY_CHECKPOINT, install_test_pack

    install_test_pack(ModelStore(get_settings().models_dir))
    core = load_graph(REPO / "graphs" / "comfy" / "txt2img.json")
    edit = load_graph(REPO / "graphs" / "comfy" / "edit.json")
    imagine = load_graph(REPO / "graphs" / "imagine.yaml")
    prompt = "a red fox in a green field"
    same = {"steps": args.steps, "cfg": 7.0, "width": args.size, "height": args.size}
    core_inputs = {**same, "prompt": prompt, "ckpt_name": TINY_CHECKPOINT,
                   "sampler_name": "euler", "scheduler": "karras"}
    ours = {**same, "prompt": prompt, "model": TINY_CHECKPOINT, "sampler": "euler",
            "scheduler": "karras"}

    ensure_ray(dashboard=False, num_cpus=2)  # as `homepilot serve` starts it
    executor = RayExecutor(build_registry())
    try:
        def hosts() -> list[dict[str, Any]]:
            return [i for i in executor.model_status() if i["id"] == TINY_CHECKPOINT]

        before = len(hosts())
        timed(executor, core, {**core_inputs, "seed": 0})  # starts the host, loads once
        first = hosts()
        source = get_settings().input_dir / "bench.png"
        source.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.new("RGB", (args.size, args.size), (200, 120, 40)).save(source)
        timed(executor, edit, {"prompt": prompt, "ckpt_name": TINY_CHECKPOINT, "seed": 1,
                               "image_path": "bench.png", "steps": 2, "denoise": 0.5})
        second = hosts()
        timed(executor, imagine, {**ours, "seed": 0})
        timed(executor, imagine, {**ours, "seed": 0, "sampler": "default",
                                  "scheduler": "normal"})
        core_times, ours_times, pipeline_times = [], [], []
        for round_ in range(args.repeat):  # interleaved, so drift hits all alike
            seed = 100 + round_
            core_times.append(timed(executor, core, {**core_inputs, "seed": seed}))
            ours_times.append(timed(executor, imagine, {**ours, "seed": seed}))
            pipeline_times.append(timed(executor, imagine, {
                **ours, "seed": seed, "sampler": "default", "scheduler": "normal"}))
    finally:
        executor.close()
        ray.shutdown()

    c, o, p = (statistics.median(t) for t in (core_times, ours_times, pipeline_times))
    print(f"txt2img, {args.steps} steps at {args.size}x{args.size}, {TINY_CHECKPOINT}, "
          f"euler/karras, torch threads {torch.get_num_threads()}, median of {args.repeat}")
    print(f"  imagine.yaml                  {o * 1000:8.1f} ms")
    print(f"  comfy/txt2img.json            {c * 1000:8.1f} ms   ratio {c / o:.3f}x "
          "(target <= 1.05x)")
    print(f"  imagine.yaml, diffusers' own  {p * 1000:8.1f} ms   (reference: the pipeline's "
          "default scheduler)")
    print(f"hosts for {TINY_CHECKPOINT}: {before} before, {len(first)} after txt2img, "
          f"{len(second)} after edit.json; loaded at "
          f"{[round(h['loaded_since'], 3) for h in first]} and "
          f"{[round(h['loaded_since'], 3) for h in second]} (same: loaded once); "
          f"requests {first[0]['requests']} -> {second[0]['requests']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
