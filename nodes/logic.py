"""Logic nodes: comparisons, boolean algebra and choosing between values.

The engine evaluates every branch a graph needs, so ``logic.Switch`` chooses between two
computed values; it does not skip the branch it does not pick.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from engine.sdk import AnyValue, Input, Json, Node, NodeContext, NodeOutputs, node
from nodes.primitive import INT_LIMIT

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "STRING"
    return type(value).__name__


@node("logic.Compare", category="logic", display_name="Compare")
class Compare(Node):
    """Compare two numbers or two texts; ``==`` and ``!=`` also work across kinds."""

    a: AnyValue = Input(0, description="a number or a text")
    b: AnyValue = Input(0, description="a number or a text")
    op: str = Input("==", choices=list(_OPERATORS), description="a <op> b")

    class Outputs(NodeOutputs):
        result: bool

    def run(self, ctx: NodeContext) -> Outputs:
        try:
            result = _OPERATORS[self.op](self.a, self.b)
        except TypeError as exc:
            raise ValueError(f"cannot compare {_kind(self.a)} {self.a!r} with {_kind(self.b)} "
                             f"{self.b!r} using '{self.op}'") from exc
        return self.Outputs(result=bool(result))


@node("logic.And", category="logic", display_name="And")
class And(Node):
    """True when both a and b are true."""

    a: bool = Input(False, description="first condition")
    b: bool = Input(False, description="second condition")

    class Outputs(NodeOutputs):
        result: bool

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(result=bool(self.a and self.b))


@node("logic.Or", category="logic", display_name="Or")
class Or(Node):
    """True when a or b (or both) is true."""

    a: bool = Input(False, description="first condition")
    b: bool = Input(False, description="second condition")

    class Outputs(NodeOutputs):
        result: bool

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(result=bool(self.a or self.b))


@node("logic.Not", category="logic", display_name="Not")
class Not(Node):
    """The opposite of a condition: true when value is false."""

    value: bool = Input(False, description="the condition to negate")

    class Outputs(NodeOutputs):
        result: bool

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(result=not self.value)


@node("logic.Switch", category="logic", display_name="Switch")
class Switch(Node):
    """Pass on ``on_true`` when the condition holds, otherwise ``on_false``."""

    condition: bool = Input(False, description="which value to pass on")
    on_true: AnyValue = Input(description="the value when condition is true")
    on_false: AnyValue = Input(description="the value when condition is false")

    class Outputs(NodeOutputs):
        value: AnyValue

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.on_true if self.condition else self.on_false)


@node("logic.Select", category="logic", display_name="Select by Index")
class Select(Node):
    """Pick one of a JSON list of options by position (0 is the first, -1 the last)."""

    index: int = Input(0, min=-INT_LIMIT, max=INT_LIMIT,
                       description="position in options; negative counts from the end")
    options: Json = Input(description="a JSON list of values to choose from")

    class Outputs(NodeOutputs):
        value: AnyValue

    def run(self, ctx: NodeContext) -> Outputs:
        if not isinstance(self.options, list):
            raise ValueError(f"options must be a JSON list, not {type(self.options).__name__}")
        if not -len(self.options) <= self.index < len(self.options):
            raise ValueError(f"index {self.index} is out of range: options has "
                             f"{len(self.options)} item(s)")
        return self.Outputs(value=self.options[self.index])
