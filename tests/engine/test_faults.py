"""Faults in the middle of a run: a Ray worker killed under a node, a model host killed
under a generation. Runs end cleanly (retried where that is safe, or failing with a
clear error) and the next run works."""

from __future__ import annotations

import threading

import pytest

from engine.executors.base import Executor
from nodes.testpack.install import TINY_SD

# Worker processes and host actors exist only under Ray: these run on the RayExecutor.
ON_RAY = pytest.mark.parametrize("executor", ["ray"], indirect=True)


def chain(make_graph, kind: str, markers: str):
    return make_graph({
        "a": {"type": "test.Inc", "inputs": {"x": 1}},
        "b": {"type": kind, "inputs": {"x": "${a.value}", "markers": markers}},
        "c": {"type": "test.Inc", "inputs": {"x": "${b.value}"}},
    }, outputs={"value": "${c.value}"})


@ON_RAY
def test_a_node_whose_worker_dies_is_run_again(executor: Executor, make_graph, markers):
    result = executor.run(chain(make_graph, "test.DieOnce", markers.path), timeout=120)
    assert result.status == "success", result.error
    assert result.outputs["value"] == 4
    assert markers()["b"] == 2  # the first worker died in it; the second finished it


@ON_RAY
def test_a_node_that_may_not_run_twice_fails_clearly_when_its_worker_dies(
        executor, make_graph, markers):
    result = executor.run(chain(make_graph, "test.DieOnceUnsafe", markers.path),
                              timeout=120)
    assert result.status == "failed" and result.error.node_id == "b"
    assert "Worker" in result.error.error_type or "worker" in result.error.message.lower()
    assert markers()["b"] == 1
    again = executor.run(chain(make_graph, "test.DieOnceUnsafe", markers.path),
                             timeout=120)
    assert again.status == "success" and again.outputs["value"] == 4


IMAGINE = {"nodes": {
    "draw": {"type": "image.TextToImage", "inputs": {
        "prompt": "a long one", "steps": 150, "width": 64, "height": 64, "seed": 3}}},
    "outputs": {"seed": "${draw.seed}"}}


@ON_RAY
def test_a_model_host_killed_mid_generation_fails_the_run_then_comes_back(
        executor, test_pack):
    import ray

    from engine.graph import Graph

    stepped = threading.Event()
    handle = executor.submit(
        Graph.model_validate(IMAGINE),
        listener=lambda e: e.type == "node_progress" and stepped.set())
    assert stepped.wait(120)
    ray.kill(ray.get_actor(f"model:{TINY_SD}"))
    result = handle.result(120)
    assert result.status == "failed" and result.error.node_id == "draw"
    assert "died while serving" in result.error.message
    short = Graph.model_validate({**IMAGINE, "nodes": {"draw": {
        "type": "image.TextToImage", "inputs": {**IMAGINE["nodes"]["draw"]["inputs"],
                                                "steps": 2}}}})
    again = executor.run(short, timeout=120)
    assert again.status == "success", again.error  # a new host serves it
