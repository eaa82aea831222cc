"""Per-node engine overhead of HomePilot's executors, on graphs of trivial nodes.

What is measured
----------------
Every node is ``test.Inc`` (``value = x + 1``) from the engine's test pack, so a run's
time is almost all engine overhead: compiling and signing the graph, consulting the
cache, scheduling, moving values, emitting events. Two shapes, at each ``--sizes``:

* ``chain``:  n0 -> n1 -> ... -> n(N-1); n0 reads the INT graph input ``start``; the
  graph output ``out`` is the last node (expected ``start + N``).
* ``fanout``: one root reading ``start`` and N-1 leaves of ``${root.value}``, each leaf a
  graph output ``o<i>`` (expected ``start + 2``), so that every node has to run.

For the LocalExecutor and for the RayExecutor with ``fuse=True`` and ``fuse=False``,
each repeat clears the executor's cache and times three ``executor.run`` calls:

* ``fresh``:   ``start=0`` on an empty cache;
* ``changed``: ``start=1`` right after, so the cache is full of ``start=0`` entries but
  every node depends on ``start`` and has to run again;
* ``cached``:  ``start=1`` once more: nothing runs, all comes from the cache.

Each run is checked (status ``success``, the expected outputs, how many nodes ran), so a
broken engine shows up as an error, never as a fast number. Every figure is the median
of ``--repeat`` repeats, after one untimed warm-up run per executor and shape (Ray worker
start-up does not count). The baseline is the same chain written directly as chained
``ray.remote`` tasks (``ref = inc.remote(ref)`` N times, then ``ray.get``).

How to read the output
----------------------
* ``us/node`` is the run's wall time divided by the graph's node count.
* ``ray/direct`` is RayExecutor time over the direct-Ray chain time (fresh, same size):
  1.0 means the engine adds nothing over hand-written Ray; the target is <= 1.2 at the
  smallest size. Fusing puts a chain in one task, so fuse=True may well be below 1.
* ``linearity`` is time(largest size) / time(smallest size); with 10x the nodes the
  target is <= 12x the time (1.2 x the size ratio in general). Above that, something
  in the engine grows faster than the graph.

Targets (PASS/MISS): LocalExecutor < 100 us per node fresh (all sizes and shapes);
RayExecutor within 1.2x of the direct Ray chain (smallest size, fresh); linearity as
above; a fully cached re-run of the smallest size < 50 ms.

Usage: ``python bench/engine_overhead.py [--sizes 500,5000] [--repeat 3] [--skip-ray]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.comfy.loader import pack_registry  # noqa: E402
from engine.executors.base import Executor  # noqa: E402
from engine.executors.local import LocalExecutor  # noqa: E402
from engine.graph import Graph  # noqa: E402
from engine.registry import Registry  # noqa: E402
from engine.run import RunResult  # noqa: E402

PACKS = REPO / "tests" / "fixtures" / "packs"
SHAPES = ("chain", "fanout")
PHASES = ("fresh", "changed", "cached")
RUN_TIMEOUT = 600.0
LOCAL_US_PER_NODE = 100.0
RAY_OVER_DIRECT = 1.2
LINEAR_SLACK = 1.2
CACHED_MS = 50.0
ANCHOR = ("ComfyUI anchor (context, not measured here): 500-node chain ~27 ms/node; a "
          "cached resubmission costs the same; a 1,000-node chain is rejected by the "
          "recursion limit.")


class BenchError(Exception):
    """A run that did not produce what it should: its time must not be reported."""


@dataclass
class Cell:
    """Median seconds per phase for one executor, shape and size (or why there are none)."""

    executor: str
    shape: str
    nodes: int
    fresh: float | None = None
    changed: float | None = None
    cached: float | None = None
    errors: dict[str, str] = field(default_factory=dict)  # phase -> first failure

    def seconds(self, phase: str) -> float | None:
        value: float | None = getattr(self, phase)
        return value


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    unit: str

    @property
    def ok(self) -> bool:
        return self.value is not None and self.value <= self.limit

    def line(self) -> str:
        shown = "n/a (no valid figure)" if self.value is None else f"{self.value:.2f} {self.unit}"
        verdict = "PASS" if self.ok else "MISS"
        return f"  [{verdict}] {self.name}: {shown} (target <= {self.limit:g} {self.unit})"


# -- graphs --------------------------------------------------------------------------------

def _start_input() -> dict[str, Any]:
    return {"start": {"type": "INT", "default": 0}}


def chain_graph(n: int) -> Graph:
    nodes: dict[str, Any] = {"n0": {"type": "test.Inc", "inputs": {"x": "${inputs.start}"}}}
    for i in range(1, n):
        nodes[f"n{i}"] = {"type": "test.Inc", "inputs": {"x": f"${{n{i - 1}.value}}"}}
    return Graph.model_validate({"name": f"chain{n}", "inputs": _start_input(), "nodes": nodes,
                                 "outputs": {"out": f"${{n{n - 1}.value}}"}})


def fanout_graph(n: int) -> Graph:
    nodes: dict[str, Any] = {"root": {"type": "test.Inc", "inputs": {"x": "${inputs.start}"}}}
    outputs: dict[str, str] = {}
    for i in range(1, n):
        nodes[f"l{i}"] = {"type": "test.Inc", "inputs": {"x": "${root.value}"}}
        outputs[f"o{i}"] = f"${{l{i}.value}}"
    return Graph.model_validate({"name": f"fanout{n}", "inputs": _start_input(), "nodes": nodes,
                                 "outputs": outputs})


def build_graph(shape: str, n: int) -> Graph:
    return chain_graph(n) if shape == "chain" else fanout_graph(n)


def expected_outputs(shape: str, n: int, start: int) -> dict[str, int]:
    if shape == "chain":
        return {"out": start + n}
    return {f"o{i}": start + 2 for i in range(1, n)}


# -- timing one executor -------------------------------------------------------------------

def check(result: RunResult, expected: dict[str, int], executed: int, phase: str) -> None:
    if result.status != "success":
        message = result.error.message if result.error is not None else "no error recorded"
        raise BenchError(f"{phase}: run {result.status}: {message}")
    if result.outputs != expected:
        wrong = sorted(k for k in expected if result.outputs.get(k) != expected[k])
        raise BenchError(f"{phase}: wrong outputs {wrong[:3]} (of {len(wrong)})")
    if len(result.executed) != executed:
        raise BenchError(f"{phase}: {len(result.executed)} nodes ran, expected {executed}")


FREEZE = True


def settle_heap() -> None:
    """Collect garbage, then (as ``homepilot run``/``serve`` do after start-up) freeze
    what is alive, so full collections during the timed run skip long-lived objects."""
    gc.collect()
    if FREEZE:
        gc.freeze()


def timed_run(executor: Executor, graph: Graph, start: int) -> tuple[float, RunResult]:
    settle_heap()
    began = time.perf_counter()
    result = executor.run(graph, {"start": start}, timeout=RUN_TIMEOUT)
    return time.perf_counter() - began, result


def one_repeat(executor: Executor, graph: Graph, shape: str, n: int,
               cell: Cell) -> dict[str, float]:
    """Fresh (start=0, empty cache), changed (start=1), cached (start=1 again).

    A phase that fails is recorded in ``cell.errors`` and left out of the times; the
    later phases still run (a failure in one must not hide the others' figures).
    """
    executor.clear_cache()
    plan = (("fresh", 0, n), ("changed", 1, n), ("cached", 1, 0))
    times: dict[str, float] = {}
    for phase, start, executed in plan:
        try:
            seconds, result = timed_run(executor, graph, start)
            check(result, expected_outputs(shape, n, start), executed, phase)
        except (BenchError, TimeoutError) as exc:
            cell.errors.setdefault(phase, str(exc))
            continue
        times[phase] = seconds
    return times


def warm_up(executor: Executor, sizes: list[int]) -> None:
    for shape in SHAPES:
        executor.clear_cache()
        executor.run(build_graph(shape, min(sizes)), {"start": 0}, timeout=RUN_TIMEOUT)
    executor.clear_cache()


def measure(executor: Executor, label: str, shape: str, n: int, repeat: int) -> Cell:
    cell = Cell(label, shape, n)
    graph = build_graph(shape, n)
    runs = [one_repeat(executor, graph, shape, n, cell) for _ in range(repeat)]
    for phase in PHASES:
        if phase not in cell.errors:  # a figure only when every repeat succeeded
            setattr(cell, phase, statistics.median(r[phase] for r in runs))
    executor.clear_cache()
    shown = ", ".join(f"{p} {_ms(cell.seconds(p))} ms" if p not in cell.errors
                      else f"{p} ERROR" for p in PHASES)
    print(f"  measured {label:<15} {shape:<6} {n:>6}: {shown}", flush=True)
    return cell


def measure_executor(executor: Executor, label: str, sizes: list[int],
                     repeat: int) -> list[Cell]:
    warm_up(executor, sizes)
    return [measure(executor, label, shape, n, repeat) for shape in SHAPES for n in sizes]


# -- the direct Ray baseline ---------------------------------------------------------------

def direct_chain(n: int) -> float:
    """Seconds for n chained ``ray.remote`` increments, checked."""
    import ray

    inc = _direct_inc()
    settle_heap()
    began = time.perf_counter()
    ref = inc.remote(0)
    for _ in range(n - 1):
        ref = inc.remote(ref)
    value = ray.get(ref, timeout=RUN_TIMEOUT)
    seconds = time.perf_counter() - began
    if value != n:
        raise BenchError(f"direct Ray chain of {n} returned {value}")
    return seconds


_INC: list[Any] = []


def _direct_inc() -> Any:
    if not _INC:
        import ray

        def inc(x: int) -> int:
            return x + 1
        _INC.append(ray.remote(inc))
    return _INC[0]


def measure_direct(sizes: list[int], repeat: int) -> dict[int, float]:
    direct_chain(min(sizes))  # warm-up
    medians = {}
    for n in sizes:
        medians[n] = statistics.median(direct_chain(n) for _ in range(repeat))
        print(f"  measured {'direct ray':<15} {'chain':<6} {n:>6}: {_ms(medians[n])} ms",
              flush=True)
    return medians


# -- reporting -----------------------------------------------------------------------------

def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f}"


def _us(seconds: float | None, n: int) -> str:
    return "n/a" if seconds is None else f"{seconds / n * 1e6:.1f}"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


def _fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def print_table(cells: list[Cell], direct: dict[int, float]) -> None:
    header = (f"{'executor':<15} {'shape':<6} {'nodes':>6} {'fresh us/n':>11} "
              f"{'changed us/n':>13} {'cached us/n':>12} {'fresh ms':>10} {'cached ms':>10}")
    print(header)
    print("-" * len(header))
    for c in cells:
        print(f"{c.executor:<15} {c.shape:<6} {c.nodes:>6} {_us(c.fresh, c.nodes):>11} "
              f"{_us(c.changed, c.nodes):>13} {_us(c.cached, c.nodes):>12} "
              f"{_ms(c.fresh):>10} {_ms(c.cached):>10}")
        for phase, error in c.errors.items():
            print(f"{'':<15} ^ {phase} ERROR: {error}")
    for n, seconds in sorted(direct.items()):
        print(f"{'direct ray':<15} {'chain':<6} {n:>6} {_us(seconds, n):>11} "
              f"{'-':>13} {'-':>12} {_ms(seconds):>10} {'-':>10}")


def find(cells: list[Cell], executor: str, shape: str, n: int) -> Cell | None:
    return next((c for c in cells if (c.executor, c.shape, c.nodes) == (executor, shape, n)),
                None)


def ray_ratios(cells: list[Cell], direct: dict[int, float]) -> dict[str, float | None]:
    ratios = {}
    for label in ("ray fuse=False", "ray fuse=True"):
        for n, seconds in sorted(direct.items()):
            cell = find(cells, label, "chain", n)
            ratios[f"{label} / direct, chain {n} fresh"] = _ratio(cell and cell.fresh, seconds)
    return ratios


def linearity(cells: list[Cell], labels: list[str], small: int,
              large: int) -> dict[str, float | None]:
    ratios = {}
    for label in labels:
        for shape in SHAPES:
            lo, hi = find(cells, label, shape, small), find(cells, label, shape, large)
            for phase in PHASES:
                ratios[f"{label} {shape} {phase}"] = _ratio(
                    hi and hi.seconds(phase), lo and lo.seconds(phase))
    return ratios


def targets(cells: list[Cell], direct: dict[int, float], labels: list[str],
            sizes: list[int]) -> list[Target]:
    small, large = min(sizes), max(sizes)
    found: list[Target] = []
    for c in cells:
        if c.executor == "local":
            value = None if c.fresh is None else c.fresh / c.nodes * 1e6
            found.append(Target(f"local {c.shape} {c.nodes} fresh per node", value,
                                LOCAL_US_PER_NODE, "us"))
    for name, value in ray_ratios(cells, direct).items():
        if name.endswith(f"chain {small} fresh"):
            found.append(Target(name, value, RAY_OVER_DIRECT, "x"))
    if large > small:
        limit = LINEAR_SLACK * large / small
        for name, value in linearity(cells, labels, small, large).items():
            found.append(Target(f"linearity {large}/{small} {name}", value, limit, "x"))
    for label in labels:
        for shape in SHAPES:
            cell = find(cells, label, shape, small)
            value = None if cell is None or cell.cached is None else cell.cached * 1e3
            found.append(Target(f"{label} {shape} {small} fully cached re-run", value,
                                CACHED_MS, "ms"))
    return found


def report(cells: list[Cell], direct: dict[int, float], labels: list[str],
           sizes: list[int]) -> dict[str, Any]:
    small, large = min(sizes), max(sizes)
    print()
    print_table(cells, direct)
    ratios = ray_ratios(cells, direct)
    if ratios:
        print("\nRayExecutor / direct Ray chain (fresh):")
        for name, value in ratios.items():
            print(f"  {name}: {_fmt_ratio(value)}")
    lines = linearity(cells, labels, small, large) if large > small else {}
    if lines:
        print(f"\nLinearity time({large}) / time({small}) (target <= "
              f"{LINEAR_SLACK * large / small:g}x):")
        for name, value in lines.items():
            print(f"  {name}: {_fmt_ratio(value)}")
    checks = targets(cells, direct, labels, sizes)
    print("\nTargets:")
    for target in checks:
        print(target.line())
    print(f"  {sum(t.ok for t in checks)}/{len(checks)} PASS")
    print(f"\n{ANCHOR}")
    return {"cells": [asdict(c) for c in cells],
            "direct_ray_chain": {str(n): s for n, s in direct.items()},
            "ray_over_direct": ratios, "linearity": lines,
            "targets": [{**asdict(t), "ok": t.ok} for t in checks]}


# -- main ----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000",
                        help="comma-separated node counts (default 500,5000)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per figure (median)")
    parser.add_argument("--skip-ray", action="store_true", help="LocalExecutor only")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="do not gc.freeze() before timed runs (homepilot does, at start-up)")
    args = parser.parse_args(argv)
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not args.sizes or min(args.sizes) < 2 or args.repeat < 1:
        parser.error("sizes must be >= 2 and repeat >= 1")
    return args


def run_all(registry: Registry, args: argparse.Namespace) -> tuple[list[Cell], dict[int, float],
                                                                   list[str]]:
    makers: list[tuple[str, Callable[[], Executor]]] = [
        ("local", lambda: LocalExecutor(registry))]
    direct: dict[int, float] = {}
    if not args.skip_ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        from engine.executors.ray import RayExecutor
        makers += [("ray fuse=True", lambda: RayExecutor(registry, fuse=True)),
                   ("ray fuse=False", lambda: RayExecutor(registry, fuse=False))]
        direct = measure_direct(args.sizes, args.repeat)
    cells: list[Cell] = []
    for label, make in makers:
        executor = make()
        try:
            cells += measure_executor(executor, label, args.sizes, args.repeat)
        finally:
            executor.close()
    return cells, direct, [label for label, _ in makers]


def main(argv: list[str] | None = None) -> int:
    global FREEZE
    args = parse_args(argv)
    FREEZE = not args.no_gc_freeze
    registry = pack_registry([str(PACKS)])
    print(f"engine overhead: sizes {args.sizes}, median of {args.repeat}, "
          f"{'local only' if args.skip_ray else 'local + ray (num_cpus=2)'}, "
          f"gc.freeze() {'off' if args.no_gc_freeze else 'on, as in homepilot'}", flush=True)
    try:
        cells, direct, labels = run_all(registry, args)
    finally:
        if not args.skip_ray:
            import ray

            ray.shutdown()
    results = report(cells, direct, labels, args.sizes)
    if args.json is not None:
        results["config"] = {"sizes": args.sizes, "repeat": args.repeat,
                             "skip_ray": args.skip_ray}
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
