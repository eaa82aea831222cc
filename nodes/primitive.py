"""Primitive nodes: graph constants and a node that shows any value.

A constant node gives a value one place in the graph that many nodes can link to, and a
slot the editor can show as a plain widget. ``primitive.Show`` is the simplest output
node: it makes a value visible in the run's ``ui`` without changing it.
"""

from __future__ import annotations

import sys

from engine.sdk import AnyValue, Input, Json, Node, NodeContext, NodeOutputs, node

# Bounds of number inputs that take any value. The editor (ComfyUI's frontend) clamps a
# number widget declared without bounds to [0, 2048], so every number input states them.
INT_LIMIT = sys.maxsize
FLOAT_LIMIT = sys.float_info.max
# The step of a FLOAT widget also sets how the editor rounds it (0.001: three decimals).
FLOAT_STEP = 0.001


@node("primitive.String", category="primitive", display_name="String")
class String(Node):
    """A text constant; link it wherever the same text is needed more than once."""

    value: str = Input("", multiline=True, description="the text")

    class Outputs(NodeOutputs):
        value: str

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.value)


@node("primitive.Int", category="primitive", display_name="Integer")
class Int(Node):
    """A whole-number constant (a seed, a count, a size)."""

    value: int = Input(0, min=-INT_LIMIT, max=INT_LIMIT, description="the number")

    class Outputs(NodeOutputs):
        value: int

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.value)


@node("primitive.Float", category="primitive", display_name="Float")
class Float(Node):
    """A decimal-number constant (a scale, a strength, a temperature)."""

    value: float = Input(0.0, min=-FLOAT_LIMIT, max=FLOAT_LIMIT, step=FLOAT_STEP,
                         description="the number")

    class Outputs(NodeOutputs):
        value: float

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.value)


@node("primitive.Boolean", category="primitive", display_name="Boolean")
class Boolean(Node):
    """A true/false constant, e.g. the condition of a ``logic.Switch``."""

    value: bool = Input(False, description="the flag")

    class Outputs(NodeOutputs):
        value: bool

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.value)


@node("primitive.Json", category="primitive", display_name="JSON")
class JsonValue(Node):
    """A JSON constant: an object, a list, or any plain value."""

    value: Json = Input(description="any JSON value")

    class Outputs(NodeOutputs):
        value: Json

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.value)


@node("primitive.Show", category="primitive", display_name="Show Value", output_node=True)
class Show(Node):
    """Show any value in the run's output (``ui.text``) and pass it on unchanged."""

    value: AnyValue = Input(description="the value to show")

    class Outputs(NodeOutputs):
        value: AnyValue

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.value).show(text=[str(self.value)])
