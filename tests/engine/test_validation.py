"""Every validation problem kind, each tied to its node and input, reported together."""

from __future__ import annotations

import pytest

from engine.compiler import compile_graph, validate_graph
from engine.errors import GraphLoadError, GraphValidationError
from engine.loader import graph_from_data, load_graph


def kinds(issues) -> set[tuple[str, str | None, str | None]]:
    return {(i.kind, i.node_id, i.input) for i in issues}


def test_all_problems_are_reported_at_once_with_node_and_input(registry, make_graph):
    graph = make_graph({
        "ghost": {"type": "test.DoesNotExist", "inputs": {}},
        "low": {"type": "test.Limited", "inputs": {"value": -1, "text": "x"}},
        "high": {"type": "test.Limited", "inputs": {"value": 11, "text": "x"}},
        "choice": {"type": "test.Limited", "inputs": {"mode": "c", "text": "x"}},
        "wrongtype": {"type": "test.Limited", "inputs": {"value": "many", "text": "x"}},
        "missing": {"type": "test.Limited", "inputs": {}},
        "dangling": {"type": "test.Inc", "inputs": {"x": "${nowhere.value}"}},
        "badout": {"type": "test.Inc", "inputs": {"x": "${low.nothing}"}},
        "mismatch": {"type": "test.Limited", "inputs": {"text": "${low.value}"}},
        "custom": {"type": "MyLimited", "inputs": {"value": 12}},
        "extra": {"type": "test.Inc", "inputs": {"y": 1}},
        "undeclared": {"type": "test.Inc", "inputs": {"x": "${inputs.nope}"}},
    })
    issues = validate_graph(graph, registry)
    assert kinds(issues) == {
        ("unknown_node_type", "ghost", None),
        ("value_smaller_than_min", "low", "value"),
        ("value_bigger_than_max", "high", "value"),
        ("value_not_in_list", "choice", "mode"),
        ("invalid_input_type", "wrongtype", "value"),
        ("required_input_missing", "missing", "text"),
        ("missing_node", "dangling", "x"),
        ("missing_output", "badout", "x"),
        ("type_mismatch", "mismatch", "text"),
        ("custom_validation_failed", "custom", "value"),
        ("unknown_input", "extra", "y"),
        ("unknown_graph_input", "undeclared", "x"),
    }
    custom = next(i for i in issues if i.kind == "custom_validation_failed")
    assert custom.message == "value must be at most 10"
    assert all(i.node_type for i in issues if i.node_id != "ghost")


def test_every_cycle_is_reported_naming_its_nodes(registry, make_graph):
    def inc(source: str) -> dict:
        return {"type": "test.Inc", "inputs": {"x": f"${{{source}.value}}"}}
    graph = make_graph({"a": inc("c"), "b": inc("a"), "c": inc("b"),
                        "d": inc("e"), "e": inc("d"),
                        "after": inc("c"), "free": {"type": "test.Inc", "inputs": {"x": 1}}})
    issues = validate_graph(graph, registry)
    assert {(i.kind, i.node_id) for i in issues} == {("cycle", n) for n in "abcde"}
    by_node = {i.node_id: i.details for i in issues}
    assert by_node["a"] == by_node["b"] == by_node["c"] and by_node["a"].count("->") == 3
    assert by_node["d"] in ("d -> e -> d", "e -> d -> e")


def test_graph_inputs_are_checked_against_their_declaration(registry, make_graph):
    graph = make_graph({"n": {"type": "test.Inc", "inputs": {"x": "${inputs.x}"}}},
                       outputs={"o": "${n.value}"},
                       inputs={"x": {"type": "INT", "min": 0, "max": 5},
                               "mode": {"type": "STRING", "default": "a", "choices": ["a", "b"]}})
    with pytest.raises(GraphValidationError) as raised:
        compile_graph(graph, registry, {"x": 9, "mode": "z", "other": 1})
    assert kinds(raised.value.issues) == {("value_bigger_than_max", None, "x"),
                                          ("value_not_in_list", None, "mode"),
                                          ("unknown_graph_input", None, "other")}
    with pytest.raises(GraphValidationError) as raised:
        compile_graph(graph, registry, {})
    assert kinds(raised.value.issues) == {("required_input_missing", None, "x")}


def test_text_from_a_command_line_is_coerced_to_the_declared_type(registry, make_graph):
    graph = make_graph({"n": {"type": "test.Inc", "inputs": {"x": "${inputs.x}"}}},
                       outputs={"o": "${n.value}"}, inputs={"x": {"type": "INT"}})
    plan = compile_graph(graph, registry, {"x": "41"})
    assert plan.nodes["n"].consts["x"] == 41


def test_an_escaped_reference_is_literal_text(registry, make_graph):
    graph = make_graph({"l": {"type": "V3Label", "inputs": {"value": "${n.value}",
                                                            "prefix": "$${not.a.link} "}},
                        "n": {"type": "test.Inc", "inputs": {"x": 1}}},
                       outputs={"o": "${l.label}"})
    plan = compile_graph(graph, registry)
    assert plan.nodes["l"].consts["prefix"] == "${not.a.link} "


def test_a_bad_file_is_a_load_error_that_says_why(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes: [unclosed")
    with pytest.raises(GraphLoadError, match="not valid YAML"):
        load_graph(broken)
    with pytest.raises(GraphLoadError, match="nodes"):
        graph_from_data({"nodes": {"a": {"inputs": {}}}})
    with pytest.raises(GraphLoadError, match="cannot read"):
        load_graph(tmp_path / "absent.yaml")


def test_comfy_api_format_loads_links_by_position(registry):
    prompt = {"1": {"class_type": "MyAdd", "inputs": {"a": 1, "b": 2}},
              "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}
    graph = graph_from_data(prompt)
    assert graph.format == "comfy"
    assert graph.nodes["2"].inputs["value"] == "${1.0}"
    plan = compile_graph(graph, registry)
    assert plan.nodes["2"].links == {"value": ("1", 0)}
    assert plan.targets == ["2"]


def test_a_comfy_prompt_without_output_nodes_is_refused(registry):
    graph = graph_from_data({"1": {"class_type": "MyAdd", "inputs": {"a": 1, "b": 2}}})
    with pytest.raises(GraphValidationError) as raised:
        compile_graph(graph, registry)
    assert raised.value.issues[0].kind == "prompt_no_outputs"


def test_a_graph_file_is_valid_before_it_gets_its_required_inputs(registry, make_graph):
    graph = make_graph({"n": {"type": "test.Inc", "inputs": {"x": "${inputs.x}"}}},
                       outputs={"o": "${n.value}"}, inputs={"x": {"type": "INT"}})
    assert validate_graph(graph, registry) == []
    issues = validate_graph(graph, registry, {"x": "many"})
    assert {(i.kind, i.input) for i in issues} == {("invalid_input_type", "x")}
