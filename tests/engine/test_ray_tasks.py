"""How the Ray executor maps a plan onto tasks: names, fusion, resource options."""

from __future__ import annotations

import pytest

from engine.executors.base import Executor

pytestmark = pytest.mark.parametrize("executor", ["ray"], indirect=True)


def test_tasks_are_named_graph_node_type_and_light_chains_fuse(executor: Executor, make_graph):
    graph = make_graph({"a": {"type": "test.Inc", "inputs": {"x": 1}},
                        "b": {"type": "test.Inc", "inputs": {"x": "${a.value}"}},
                        "c": {"type": "test.Inc", "inputs": {"x": "${b.value}"}},
                        "left": {"type": "test.Inc", "inputs": {"x": "${c.value}"}},
                        "right": {"type": "test.Inc", "inputs": {"x": "${c.value}"}},
                        "gpu": {"type": "test.PrefersGpu", "inputs": {}}},
                       outputs={"l": "${left.value}", "r": "${right.value}", "g": "${gpu.value}"},
                       name="demo")
    plan = executor.prepare(graph)
    to_run = list(plan.nodes)
    fused = executor.groups(plan, to_run)
    # a -> b -> c is a chain; c feeds two branches, which stay separate tasks.
    assert sorted(map(tuple, fused)) == [("a", "b", "c"), ("gpu",), ("left",), ("right",)]
    names = {tuple(g): executor.task_options(plan, g)["name"] for g in fused}
    assert names[("a", "b", "c")] == "demo/a..c:fused[3]"
    assert names[("left",)] == "demo/left:test.Inc"
    executor.fuse = False
    try:
        single = executor.groups(plan, to_run)
    finally:
        executor.fuse = True
    assert all(len(g) == 1 for g in single) and len(single) == 6
    assert executor.task_options(plan, ["b"])["name"] == "demo/b:test.Inc"
    # No GPU in this cluster: a node that merely prefers one asks for none.
    assert "num_gpus" not in executor.task_options(plan, ["gpu"])


def test_a_gpu_node_asks_ray_for_its_gpu_fraction(executor: Executor, make_graph):
    graph = make_graph({"g": {"type": "test.NeedsGpu", "inputs": {}}},
                       outputs={"g": "${g.value}"}, name="gpu")
    # Refused before running on this GPU-less cluster; the options it would get:
    from engine.compiler import compile_graph
    plan = compile_graph(graph, executor.registry)
    options = executor.task_options(plan, ["g"])
    assert options["num_gpus"] == 1 and options["name"] == "gpu/g:test.NeedsGpu"


def test_engine_status_reports_the_cluster(executor: Executor):
    status = executor.status()
    assert status["executor"] == "ray" and status["cluster_resources"]["CPU"] == 4
    assert status["ray_address"]
