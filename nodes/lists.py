"""List nodes: JSON lists, and ``lists.Range``, which makes downstream nodes run per item.

A JSON list travels as one value. An ``is_list`` output (``lists.Range.items``) is
different: like ComfyUI's OUTPUT_IS_LIST, every node it feeds runs once per item and
its own outputs become lists of the per-item results.
"""

from __future__ import annotations

from typing import Any

from engine.sdk import AnyValue, Input, Json, Node, NodeContext, NodeOutputs, Output, node
from nodes.primitive import INT_LIMIT

# A range longer than this is almost certainly a mistake (a swapped start and stop).
MAX_RANGE = 100_000


def _need_list(value: Any, name: str = "items") -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a JSON list, not {type(value).__name__}")
    return value


def _step_problem(inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [("step", "step must not be 0")] if inputs.get("step") == 0 else []


@node("lists.Range", category="lists", display_name="Range")
class Range(Node):
    """Whole numbers from start up to (not including) stop, like Python's ``range``.

    ``items`` maps: each linked node runs once per number. ``values`` is the same numbers
    as one JSON list, for nodes that work on the whole list (``lists.Sum``).
    """

    start: int = Input(0, min=-INT_LIMIT, max=INT_LIMIT, description="the first number")
    stop: int = Input(10, min=-INT_LIMIT, max=INT_LIMIT,
                      description="where to stop (not included)")
    step: int = Input(1, min=-INT_LIMIT, max=INT_LIMIT,
                      description="may be negative; never 0")

    class Outputs(NodeOutputs):
        items: list[int] = Output(type="INT", is_list=True,
                                  description="one number per downstream run")
        values: list[int] = Output(description="all numbers as one JSON list")
        count: int

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return _step_problem(inputs)

    def run(self, ctx: NodeContext) -> Outputs:
        if self.step == 0:
            raise ValueError("step must not be 0")
        numbers = range(self.start, self.stop, self.step)
        if len(numbers) > MAX_RANGE:
            raise ValueError(f"range({self.start}, {self.stop}, {self.step}) has {len(numbers)} "
                             f"items; the limit is {MAX_RANGE}")
        values = list(numbers)
        return self.Outputs(items=values, values=list(values), count=len(values))


@node("lists.Length", category="lists", display_name="List Length")
class Length(Node):
    """The number of items in a JSON list (or keys in an object)."""

    items: Json = Input(description="a JSON list or object")

    class Outputs(NodeOutputs):
        length: int

    def run(self, ctx: NodeContext) -> Outputs:
        if not isinstance(self.items, (list, dict)):
            raise ValueError(f"items must be a JSON list or object, not "
                             f"{type(self.items).__name__}")
        return self.Outputs(length=len(self.items))


@node("lists.Get", category="lists", display_name="Get List Item")
class Get(Node):
    """The item at a position (0 is the first, -1 the last)."""

    items: Json = Input(description="a JSON list")
    index: int = Input(0, min=-INT_LIMIT, max=INT_LIMIT,
                       description="position; negative counts from the end")

    class Outputs(NodeOutputs):
        value: AnyValue

    def run(self, ctx: NodeContext) -> Outputs:
        items = _need_list(self.items)
        if not -len(items) <= self.index < len(items):
            raise ValueError(f"index {self.index} is out of range: the list has {len(items)} "
                             "item(s)")
        return self.Outputs(value=items[self.index])


@node("lists.Slice", category="lists", display_name="Slice List")
class Slice(Node):
    """Part of a list, as Python's ``items[start:stop:step]``.

    Left empty, start and stop mean "from the first" and "to the end" (in the direction of
    the step), so step -1 alone reverses the list.
    """

    items: Json = Input(description="a JSON list")
    start: int | None = Input(optional=True, min=-INT_LIMIT, max=INT_LIMIT,
                              description="empty: from the first")
    stop: int | None = Input(optional=True, min=-INT_LIMIT, max=INT_LIMIT,
                             description="empty: to the end")
    step: int = Input(1, min=-INT_LIMIT, max=INT_LIMIT, description="never 0; -1 reverses")

    class Outputs(NodeOutputs):
        items: Json

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return _step_problem(inputs)

    def run(self, ctx: NodeContext) -> Outputs:
        if self.step == 0:
            raise ValueError("step must not be 0")
        return self.Outputs(items=_need_list(self.items)[self.start:self.stop:self.step])


@node("lists.Append", category="lists", display_name="Append to List")
class Append(Node):
    """A new list with one more item at the end (the input list is not changed)."""

    items: Json = Input([], description="a JSON list")
    value: AnyValue = Input(description="the item to add")

    class Outputs(NodeOutputs):
        items: Json

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(items=[*_need_list(self.items), self.value])


@node("lists.Sum", category="lists", display_name="Sum of List")
class Sum(Node):
    """The sum of a list of numbers (0 for an empty list)."""

    items: Json = Input(description="a JSON list of numbers")

    class Outputs(NodeOutputs):
        total: float

    def run(self, ctx: NodeContext) -> Outputs:
        items = _need_list(self.items)
        for position, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise ValueError(f"item {position} is {item!r}, not a number; lists.Sum adds "
                                 "numbers only")
        return self.Outputs(total=float(sum(items)))


@node("lists.Sort", category="lists", display_name="Sort List")
class Sort(Node):
    """Sort numbers or texts; with ``key``, sort JSON objects by that field."""

    items: Json = Input(description="a JSON list")
    reverse: bool = Input(False, description="largest first")
    key: str = Input("", description="for a list of objects: the field to sort by")

    class Outputs(NodeOutputs):
        items: Json

    def run(self, ctx: NodeContext) -> Outputs:
        items = _need_list(self.items)
        if self.key:
            for position, item in enumerate(items):
                if not isinstance(item, dict) or self.key not in item:
                    raise ValueError(f"item {position} has no field {self.key!r} to sort by")
            keys = [item[self.key] for item in items]
        else:
            keys = list(items)
        try:
            order = sorted(range(len(items)), key=keys.__getitem__, reverse=self.reverse)
        except TypeError as exc:
            kinds = sorted({type(k).__name__ for k in keys})
            raise ValueError(f"cannot sort items of mixed kinds ({', '.join(kinds)}): "
                             f"{exc}") from exc
        return self.Outputs(items=[items[i] for i in order])
