from __future__ import annotations

import pytest

from nodes.lists import MAX_RANGE, Append, Get, Length, Range, Slice, Sort, Sum
from tests.nodes.conftest import RunNode


def test_range_gives_numbers_as_mapped_items_and_as_one_list(run_node: RunNode) -> None:
    ran = run_node(Range, start=1, stop=10, step=3)
    assert ran["items"] == [1, 4, 7] and ran["values"] == [1, 4, 7] and ran["count"] == 3
    assert ran["items"] is not ran["values"]


def test_range_counts_down_with_a_negative_step(run_node: RunNode) -> None:
    assert run_node(Range, start=3, stop=0, step=-1)["values"] == [3, 2, 1]


def test_range_items_output_makes_downstream_nodes_run_per_item() -> None:
    outputs = {o.name: o for o in Range.__node_def__.spec.outputs}
    assert outputs["items"].is_list and outputs["items"].type == "INT"
    assert not outputs["values"].is_list and outputs["values"].type == "JSON"


def test_range_step_zero_is_refused_before_and_during_the_run(run_node: RunNode) -> None:
    assert Range.check({"step": 0}) == [("step", "step must not be 0")]
    with pytest.raises(ValueError, match="step must not be 0"):
        run_node(Range, step=0)


def test_range_refuses_absurd_lengths(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match=f"the limit is {MAX_RANGE}"):
        run_node(Range, start=0, stop=MAX_RANGE + 1)


def test_length_counts_list_items_and_object_keys(run_node: RunNode) -> None:
    assert run_node(Length, items=[1, 2, 3])["length"] == 3
    assert run_node(Length, items={"a": 1})["length"] == 1
    with pytest.raises(ValueError, match="must be a JSON list or object, not int"):
        run_node(Length, items=5)


def test_get_reads_by_position(run_node: RunNode) -> None:
    assert run_node(Get, items=["a", "b"], index=0)["value"] == "a"
    assert run_node(Get, items=["a", "b"], index=-1)["value"] == "b"


def test_get_out_of_range_names_the_length(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="index 2 is out of range: the list has 2 item"):
        run_node(Get, items=["a", "b"], index=2)


def test_slice_follows_python_slicing(run_node: RunNode) -> None:
    items = [0, 1, 2, 3, 4, 5]
    assert run_node(Slice, items=items, start=1, stop=4)["items"] == [1, 2, 3]
    assert run_node(Slice, items=items, start=2)["items"] == [2, 3, 4, 5]
    assert run_node(Slice, items=items, step=-2)["items"] == [5, 3, 1]


def test_slice_start_and_stop_are_optional() -> None:
    stop = Slice.__node_def__.spec.input("stop")
    assert stop is not None and stop.kind == "optional" and stop.type == "INT"
    assert Slice.__node_def__.spec.input("start").kind == "optional"


def test_append_returns_a_new_list(run_node: RunNode) -> None:
    original = [1, 2]
    assert run_node(Append, items=original, value={"x": 3})["items"] == [1, 2, {"x": 3}]
    assert original == [1, 2]
    assert run_node(Append, value="first")["items"] == ["first"]


def test_sum_adds_numbers(run_node: RunNode) -> None:
    assert run_node(Sum, items=[1, 2.5, -0.5])["total"] == 3.0
    assert run_node(Sum, items=[])["total"] == 0.0


def test_sum_names_the_item_that_is_not_a_number(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match="item 1 is '2', not a number"):
        run_node(Sum, items=[1, "2"])
    with pytest.raises(ValueError, match="item 0 is True"):
        run_node(Sum, items=[True])


def test_sort_orders_numbers_texts_and_objects_by_key(run_node: RunNode) -> None:
    assert run_node(Sort, items=[3, 1, 2])["items"] == [1, 2, 3]
    assert run_node(Sort, items=["b", "a"], reverse=True)["items"] == ["b", "a"]
    people = [{"name": "b", "age": 40}, {"name": "a", "age": 30}]
    assert run_node(Sort, items=people, key="age")["items"] == [people[1], people[0]]


def test_sort_explains_mixed_kinds_and_missing_keys(run_node: RunNode) -> None:
    with pytest.raises(ValueError, match=r"mixed kinds \(int, str\)"):
        run_node(Sort, items=[1, "a"])
    with pytest.raises(ValueError, match="item 1 has no field 'age'"):
        run_node(Sort, items=[{"age": 1}, {"name": "x"}], key="age")
