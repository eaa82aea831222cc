"""The starter nodes' schemas and ``check`` hooks surface as graph validation issues."""

from __future__ import annotations

from typing import Any

import pytest

from engine.compiler import validate_graph
from engine.loader import graph_from_data
from engine.registry import Registry
from nodes import build_registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry()


def issues(registry: Registry, node_type: str, **inputs: Any) -> list[tuple[str, str | None]]:
    graph = graph_from_data({"nodes": {"n": {"type": node_type, "inputs": inputs}}})
    return [(issue.kind, issue.input) for issue in validate_graph(graph, registry)]


def test_a_valid_constant_node_has_no_issues(registry: Registry) -> None:
    assert issues(registry, "text.Regex", pattern=r"\d+", text="a1") == []


@pytest.mark.parametrize(("node_type", "inputs", "expected"), [
    ("text.Regex", {"pattern": "(unclosed"}, ("custom_validation_failed", "pattern")),
    ("text.Template", {"template": "{oops"}, ("custom_validation_failed", "template")),
    ("math.Expression", {"expression": "a.__class__"},
     ("custom_validation_failed", "expression")),
    ("math.Clamp", {"low": 5, "high": 1}, ("custom_validation_failed", "high")),
    ("lists.Range", {"step": 0}, ("custom_validation_failed", "step")),
    ("image.Solid", {"color": "not a colour"}, ("custom_validation_failed", "color")),
    ("image.Solid", {"width": 100_000}, ("value_bigger_than_max", "width")),
    ("text.Case", {"text": "x", "mode": "shout"}, ("value_not_in_list", "mode")),
    ("logic.Compare", {"op": "=<"}, ("value_not_in_list", "op")),
    ("text.Regex", {"text": "no pattern"}, ("required_input_missing", "pattern")),
])
def test_bad_constants_are_reported_with_their_input(registry: Registry, node_type: str,
                                                     inputs: dict[str, Any],
                                                     expected: tuple[str, str]) -> None:
    assert expected in issues(registry, node_type, **inputs)
