"""Nodes that carry a graph file's own parts into the visual editor.

A graph's inputs, outputs, template strings and constants given to link-only ports have
no node of their own in a graph file; in the editor (ComfyUI's frontend) everything is a
node. These four stand for them, so a graph converted to the editor's workflow format and
run from there (as a ComfyUI API prompt) computes what the graph file computes. The
converters in ``engine/workflow*.py`` turn them back into graph inputs, outputs, template
strings and constants.
"""

from __future__ import annotations

from typing import Any

from engine.sdk import AnyValue, Input, Node, NodeContext, NodeOutputs, node
from engine.types import constant_fits
from engine.workflow_values import PORT_TYPES, decode_value, render_template, shown_text


def _typed(port_type: str, text: str, what: str) -> Any:
    if port_type != "STRING" and not text.strip():
        raise ValueError(f"{what} needs a value: type one in its 'value' box")
    value = decode_value(port_type, text)
    if not constant_fits(port_type, value):
        raise ValueError(f"{what}: {text!r} is not a valid {port_type}")
    return value


@node("graph.Input", category="graph", display_name="Graph Input")
class GraphInput(Node):
    """One input of the graph: its name, type and value.

    The value is the default when the graph is saved as a file. Text is taken as written;
    other types are JSON (42, 0.5, true, ["a", "b"], {"k": 1}).
    """

    name: str = Input("input", description="the graph input's name (${inputs.<name>})")
    type: str = Input("STRING", choices=list(PORT_TYPES), description="its port type")
    value: str = Input("", multiline=True,
                       description="its value: text as is, other types as JSON")

    class Outputs(NodeOutputs):
        value: AnyValue

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=_typed(self.type, self.value, f"graph input '{self.name}'"))


@node("graph.Output", category="graph", display_name="Graph Output", output_node=True)
class GraphOutput(Node):
    """One output of the graph: a run reports the linked value under this name, and the
    editor shows it."""

    name: str = Input("output", description="the graph output's name")
    value: AnyValue = Input(description="the value to report")

    class Outputs(NodeOutputs):
        value: AnyValue

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=self.value).show(text=[shown_text(self.value)])


@node("graph.Template", category="graph", display_name="Graph Template")
class GraphTemplate(Node):
    """Text with the linked values filled in.

    ${a} ... ${h} name the linked inputs, $${ writes a literal ${. Values render as in a
    graph file's template strings.
    """

    template: str = Input("", multiline=True, description="text with ${a} ... ${h}")
    a: AnyValue = Input(optional=True)
    b: AnyValue = Input(optional=True)
    c: AnyValue = Input(optional=True)
    d: AnyValue = Input(optional=True)
    e: AnyValue = Input(optional=True)
    f: AnyValue = Input(optional=True)
    g: AnyValue = Input(optional=True)
    h: AnyValue = Input(optional=True)

    class Outputs(NodeOutputs):
        text: str

    def run(self, ctx: NodeContext) -> Outputs:
        values = {name: getattr(self, name) for name in "abcdefgh"}
        return self.Outputs(text=render_template(self.template, values))


@node("graph.Constant", category="graph", display_name="Graph Constant")
class GraphConstant(Node):
    """A constant for an input that only takes links.

    Any type, lists and objects included: text is taken as written, other types are JSON.
    """

    type: str = Input("JSON", choices=list(PORT_TYPES), description="its port type")
    value: str = Input("", multiline=True,
                       description="the value: text as is, other types as JSON")

    class Outputs(NodeOutputs):
        value: AnyValue

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=_typed(self.type, self.value, "the constant"))
