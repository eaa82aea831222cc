"""One behaviour suite, run against the LocalExecutor and the RayExecutor."""

from __future__ import annotations

import threading

import pytest

from engine.errors import GraphValidationError
from engine.events import Event


def inc(x: object, markers: str = "") -> dict:
    return {"type": "test.Inc", "inputs": {"x": x, "markers": markers}}


def test_independent_branches_run_at_the_same_time(executor, make_graph, tmp_path):
    gate = str(tmp_path / "gate")
    wait = {"type": "test.Wait", "inputs": {"x": "${root.value}", "seconds": 20, "gate": gate,
                                            "peers": 2}}
    graph = make_graph({"root": inc(1), "left": wait, "right": dict(wait),
                        "join": {"type": "test.Sum", "inputs": {"a": "${left.value}",
                                                                 "b": "${right.value}"}}},
                       outputs={"total": "${join.value}"})
    result = executor.run(graph, timeout=60)
    assert result.status == "success", result.error
    assert result.outputs == {"total": 4}
    left, right = result.timings["left"], result.timings["right"]
    # Each waiter blocks until the other has started, so their intervals overlap.
    assert left.start < right.end and right.start < left.end


def chain(length: int, markers: str = "") -> dict:
    return {f"n{i}": inc(f"${{n{i - 1}.value}}" if i else 0, markers) for i in range(length)}


def test_a_second_run_executes_nothing_and_returns_the_same_outputs(executor, make_graph,
                                                                    markers):
    graph = make_graph(chain(6, markers.path), outputs={"out": "${n5.value}"})
    first = executor.run(graph, timeout=60)
    second = executor.run(graph, timeout=60)
    assert first.outputs == second.outputs == {"out": 6}
    assert len(first.executed) == 6
    assert second.executed == [] and second.cached == ["n5"]
    assert markers() == {f"n{i}": 1 for i in range(6)}


def test_changing_one_input_recomputes_only_its_descendants(executor, make_graph, markers):
    total = {"type": "test.Sum", "inputs": {"a": "${a.value}", "b": "${b.value}"}}
    graph = make_graph({"a": inc("${inputs.a}", markers.path),
                        "b": inc("${inputs.b}", markers.path),
                        "s": total, "t": inc("${s.value}", markers.path)},
                       outputs={"out": "${t.value}"},
                       inputs={"a": {"type": "INT", "default": 1},
                               "b": {"type": "INT", "default": 10}})
    assert executor.run(graph, timeout=60).outputs == {"out": 14}
    changed = executor.run(graph, {"b": 20}, timeout=60)
    assert changed.outputs == {"out": 24}
    assert sorted(changed.executed) == ["b", "s", "t"]
    assert changed.cached == ["a"]
    assert markers() == {"a": 1, "b": 2, "t": 2}


def test_only_nodes_feeding_the_requested_outputs_run(executor, make_graph):
    graph = make_graph({"a": inc(1), "b": inc(100), "c": inc("${b.value}")},
                       outputs={"first": "${a.value}", "second": "${c.value}"})
    result = executor.run(graph, outputs=["first"], timeout=60)
    assert result.outputs == {"first": 2}
    assert result.executed == ["a"]


def test_a_non_deterministic_node_and_its_descendants_rerun(executor, make_graph, markers):
    graph = make_graph({"clock": {"type": "test.Clock", "inputs": {"markers": markers.path}},
                        "after": inc("${clock.value}", markers.path),
                        "fixed": inc(5, markers.path)},
                       outputs={"t": "${after.value}", "f": "${fixed.value}"})
    first = executor.run(graph, timeout=60)
    second = executor.run(graph, timeout=60)
    assert first.outputs["t"] != second.outputs["t"]
    assert sorted(second.executed) == ["after", "clock"] and second.cached == ["fixed"]
    assert markers() == {"clock": 2, "after": 2, "fixed": 1}


def test_a_fingerprint_of_always_reruns_the_node(executor, make_graph, markers):
    graph = make_graph({"v": {"type": "test.Volatile", "inputs": {"fresh": "${inputs.fresh}",
                                                                  "markers": markers.path}}},
                       outputs={"v": "${v.value}"},
                       inputs={"fresh": {"type": "BOOLEAN", "default": True}})
    for _ in range(2):
        executor.run(graph, timeout=60)
    executor.run(graph, {"fresh": False}, timeout=60)
    executor.run(graph, {"fresh": False}, timeout=60)
    assert markers() == {"v": 3}


def test_a_failing_node_fails_the_run_and_is_named(executor, make_graph):
    graph = make_graph({"ok": inc(1),
                        "bad": {"type": "test.Fail", "inputs": {"x": "${ok.value}",
                                                                "message": "no thanks"}},
                        "slow": {"type": "test.Wait", "inputs": {"seconds": 30}},
                        "after": inc("${bad.value}")},
                       outputs={"a": "${after.value}", "s": "${slow.value}"})
    events: list[Event] = []
    result = executor.run(graph, listener=events.append, timeout=60)
    assert result.status == "failed"
    assert result.error.node_id == "bad" and result.error.node_type == "test.Fail"
    assert result.error.error_type == "ValueError" and result.error.message == "no thanks"
    assert "after" not in result.executed and "slow" not in result.executed
    failed = [e for e in events if e.type == "node_failed"]
    assert [e.node_id for e in failed] == ["bad"]
    assert events[-1].type == "run_failed"


def test_a_run_can_be_cancelled_while_a_node_runs(executor, make_graph):
    graph = make_graph({"slow": {"type": "test.Wait", "inputs": {"seconds": 30}},
                        "after": inc("${slow.value}")}, outputs={"out": "${after.value}"})
    started = threading.Event()
    handle = executor.submit(graph, listener=lambda e: started.set()
                             if e.type == "run_started" else None)
    assert started.wait(30)
    handle.cancel()
    result = handle.result(timeout=30)
    assert result.status == "cancelled"
    assert result.executed == []
    assert handle.events[-1].type == "run_cancelled"


def test_progress_events_reach_the_listener(executor, make_graph):
    graph = make_graph({"s": {"type": "test.Steps", "inputs": {"count": 4}}},
                       outputs={"n": "${s.value}"})
    events: list[Event] = []
    result = executor.run(graph, listener=events.append, timeout=60)
    assert result.outputs == {"n": 4}
    progress = [(e.data["value"], e.data["max"]) for e in events if e.type == "node_progress"]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    kinds = [e.type for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.index("node_started") < kinds.index("node_finished")


def test_a_node_that_needs_a_gpu_is_refused_before_anything_runs(executor, make_graph, markers):
    graph = make_graph({"first": inc(1, markers.path),
                        "gpu": {"type": "test.NeedsGpu", "inputs": {}}},
                       outputs={"g": "${gpu.value}", "f": "${first.value}"})
    with pytest.raises(GraphValidationError) as raised:
        executor.run(graph, timeout=60)
    (issue,) = raised.value.issues
    assert issue.kind == "gpu_unavailable" and issue.node_id == "gpu"
    assert markers() == {}


def test_a_node_that_prefers_a_gpu_runs_on_cpu_without_one(executor, make_graph):
    graph = make_graph({"p": {"type": "test.PrefersGpu", "inputs": {}}},
                       outputs={"p": "${p.value}"})
    assert executor.run(graph, timeout=60).outputs == {"p": 1}


def test_templates_render_after_their_sources(executor, make_graph):
    graph = make_graph({"a": inc(41),
                        "label": {"type": "V3Label", "inputs": {"value": "${a.value}",
                                                                "prefix": "${inputs.who} got "}}},
                       outputs={"text": "${label.label}"},
                       inputs={"who": {"type": "STRING", "default": "Ann"}})
    result = executor.run(graph, timeout=60)
    assert result.outputs == {"text": "Ann got 42"}
    assert result.ui == {"label": {"text": ["Ann got 42"]}}


def test_a_ten_thousand_node_chain_runs_without_recursion(executor, make_graph):
    graph = make_graph(chain(10_000),
                       outputs={"out": "${n9999.value}"})
    result = executor.run(graph, timeout=300)
    assert result.outputs == {"out": 10_000}
    assert len(result.executed) == 10_000


def test_identical_nodes_share_a_cache_entry_and_stay_correct(executor, make_graph):
    leaves = {f"l{i}": inc("${root.value}") for i in range(4)}
    graph = make_graph({"root": inc("${inputs.s}"), **leaves,
                        "join": {"type": "test.Sum", "inputs": {"a": "${l0.value}",
                                                                "b": "${l3.value}"}}},
                       outputs={**{f"o{i}": f"${{l{i}.value}}" for i in range(4)},
                                "j": "${join.value}"},
                       inputs={"s": {"type": "INT", "default": 1}})
    first = executor.run(graph, timeout=60)
    assert first.outputs == {"o0": 3, "o1": 3, "o2": 3, "o3": 3, "j": 6}
    cached = executor.run(graph, timeout=60)
    assert cached.status == "success" and cached.outputs == first.outputs
    assert cached.executed == []
    # A cached duplicate feeding a node that has to run (only the join's output asked for).
    executor.cache.clear()
    executor.run(graph, outputs=["o1"], timeout=60)
    partial = executor.run(graph, outputs=["j"], timeout=60)
    assert partial.status == "success", partial.error
    assert partial.outputs == {"j": 6}
