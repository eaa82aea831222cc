from __future__ import annotations

import pytest

from nodes.logic import And, Compare, Not, Or, Select, Switch
from tests.nodes.conftest import RunNode


@pytest.mark.parametrize(("a", "op", "b", "expected"), [
    (1, "==", 1.0, True), (1, "!=", 2, True), (2, "<", 3, True), (3, "<=", 3, True),
    (3, ">", 3, False), (3, ">=", 3.5, False), ("apple", "<", "banana", True),
    ("a", "==", "a", True), ("1", "==", 1, False),
])
def test_compare_numbers_and_texts(run_node: RunNode, a: object, op: str, b: object,
                                   expected: bool) -> None:
    assert run_node(Compare, a=a, b=b, op=op)["result"] is expected


def test_ordering_a_text_against_a_number_is_a_clear_error(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="cannot compare STRING 'a' with number 1 using '<'"):
        run_node(Compare, a="a", b=1, op="<")


def test_compare_offers_the_six_operators() -> None:
    op = Compare.__node_def__.spec.input("op")
    assert op is not None and op.choices == ["==", "!=", "<", "<=", ">", ">="]


@pytest.mark.parametrize(("a", "b"), [(False, False), (False, True), (True, False),
                                      (True, True)])
def test_and_or_follow_truth_tables(run_node: RunNode, a: bool, b: bool) -> None:
    assert run_node(And, a=a, b=b)["result"] is (a and b)
    assert run_node(Or, a=a, b=b)["result"] is (a or b)


def test_not_negates(run_node: RunNode) -> None:
    assert run_node(Not, value=True)["result"] is False
    assert run_node(Not, value=False)["result"] is True


def test_switch_picks_the_branch_by_condition(run_node: RunNode) -> None:
    assert run_node(Switch, condition=True, on_true="yes", on_false=[0])["value"] == "yes"
    assert run_node(Switch, condition=False, on_true="yes", on_false=[0])["value"] == [0]


def test_select_picks_by_position_counting_from_either_end(run_node: RunNode) -> None:
    options = ["small", "medium", "large"]
    assert run_node(Select, index=1, options=options)["value"] == "medium"
    assert run_node(Select, index=-1, options=options)["value"] == "large"


def test_select_out_of_range_says_how_many_options_there_are(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="index 3 is out of range: options has 3 item"):
        run_node(Select, index=3, options=["a", "b", "c"])
    with pytest.raises(ValueError, match="options must be a JSON list"):
        run_node(Select, index=0, options={"a": 1})
