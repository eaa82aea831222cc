from __future__ import annotations

import pytest

from nodes.primitive import Boolean, Float, Int, JsonValue, Show, String
from tests.nodes.conftest import RunNode


@pytest.mark.parametrize(("cls", "value"), [
    (String, "hello\nworld"), (Int, 42), (Float, 2.5), (Boolean, True),
    (JsonValue, {"names": ["a", "b"], "n": 2}),
])
def test_constants_pass_their_value_through(run_node: RunNode, cls: type, value: object) -> None:
    assert run_node(cls, value=value)["value"] == value


def test_constant_defaults_are_empty_values(run_node: RunNode) -> None:
    assert run_node(String)["value"] == ""
    assert run_node(Int)["value"] == 0
    assert run_node(Float)["value"] == 0.0
    assert run_node(Boolean)["value"] is False


def test_json_constant_is_required_but_strings_are_not() -> None:
    inputs = {i.name: i for i in JsonValue.__node_def__.spec.inputs}
    assert inputs["value"].kind == "required" and inputs["value"].default is None
    assert String.__node_def__.spec.inputs[0].multiline


def test_show_displays_the_value_as_text_and_passes_it_on(run_node: RunNode) -> None:
    ran = run_node(Show, value=[1, 2])
    assert ran["value"] == [1, 2]
    assert ran.ui == {"text": ["[1, 2]"]}


def test_show_is_an_output_node_taking_any_type() -> None:
    spec = Show.__node_def__.spec
    assert spec.output_node
    assert spec.inputs[0].type == "*"
