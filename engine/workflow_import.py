"""An editor workflow (UI format 0.4) as our graph: ``workflow_to_graph``.

graph.Input / graph.Output nodes become the graph's inputs and outputs again; a
graph.Template or graph.Constant that feeds one input of one graph node goes back into
that input as a template string or constant. Node ids come from titles (slugged, made
unique, in editor-id order) unless a node carries a ``node_id`` property. What only the
editor needs (ids, positions, sizes, links, view) goes to the graph's ``ui:`` block, so
that ``graph_to_workflow`` gives the same workflow back.
"""

from __future__ import annotations

import re
from typing import Any

from engine.graph import Graph, GraphInput, NodeInstance
from engine.reference import escape
from engine.registry import Registry
from engine.workflow_export import GRAPH_CONSTANT, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_TEMPLATE
from engine.workflow_model import UiNode, parse_workflow
from engine.workflow_read import NOTE_TYPES, Wiring, read_widgets
from engine.workflow_slots import CONTROL_FIXED, widget_default
from engine.workflow_ui import (
    HAS_DEFAULT,
    INPUT_META,
    NODE_ID,
    SR_NAME,
    UiBlock,
    UiNodeEntry,
    derive_ids,
    feeder_key,
    input_key,
    output_key,
)
from engine.workflow_values import decode_value, placeholders

_PLACEHOLDER = re.compile(r"(?<!\$)\$\{\s*([a-h])\s*\}")
_NAME = re.compile(r"[A-Za-z0-9_\-]+")


class _Reader:
    def __init__(self, wiring: Wiring) -> None:
        self.w = wiring
        self.values: dict[str, dict[str, Any]] = {}
        self.controls: dict[str, dict[str, Any]] = {}
        for key, slots in wiring.slots.items():
            self.values[key], self.controls[key] = read_widgets(wiring.nodes[key], slots)
        self.inputs: dict[str, str] = {}       # editor node -> graph input name
        self.outputs: dict[str, str] = {}      # editor node -> graph output name
        self.absorbed: dict[str, tuple[str, str]] = {}  # feeder -> (target node, input)
        self.ids: dict[str, str] = {}          # editor node -> graph node id

    def kind(self, key: str) -> str:
        node = self.w.nodes[key]
        return "" if NODE_ID in node.properties else node.type

    def classify(self) -> None:
        keys = self.w.sorted_keys()
        feeds_output = {src.node for k in keys if self.kind(k) == GRAPH_OUTPUT
                        for src in self.w.inputs[k].values()}
        for key in keys:
            name = self.values.get(key, {}).get("name")
            if self.kind(key) == GRAPH_INPUT and key not in feeds_output \
                    and self._free(name, self.inputs):
                self.inputs[key] = name
            elif self.kind(key) == GRAPH_OUTPUT and "value" in self.w.inputs[key] \
                    and self._free(name, self.outputs):
                self.outputs[key] = name
        for key in keys:
            target = self._single_target(key)
            if target is None:
                continue
            if self.kind(key) == GRAPH_TEMPLATE and self._template_fits(key):
                self.absorbed[key] = target
            elif self.kind(key) == GRAPH_CONSTANT and \
                    self.w.slots[target[0]].widget(target[1]) is None:
                self.absorbed[key] = target
        regular = [k for k in keys if k in self.w.slots and not self.is_part(k)]
        self.ids = derive_ids((k, self.title(k), self.w.nodes[k].properties.get(NODE_ID))
                              for k in regular)

    @staticmethod
    def _free(name: Any, taken: dict[str, str]) -> bool:
        return isinstance(name, str) and _NAME.fullmatch(name) is not None \
            and name not in taken.values()

    def is_part(self, key: str) -> bool:
        return key in self.inputs or key in self.outputs or key in self.absorbed

    def _single_target(self, key: str) -> tuple[str, str] | None:
        """The one graph-node input a feeder feeds, if that is all it feeds."""
        targets = self.w.outgoing.get(key, [])
        if len(targets) != 1:
            return None
        target = targets[0][0]
        if self.kind(target) in (GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_TEMPLATE, GRAPH_CONSTANT):
            return None
        if target not in self.w.slots:
            return None
        return targets[0]

    def _template_fits(self, key: str) -> bool:
        text = self.values[key].get("template")
        linked = set(self.w.inputs[key])
        return isinstance(text, str) and bool(linked) and set(placeholders(text)) == linked \
            and all(self.kind(s.node) not in (GRAPH_TEMPLATE, GRAPH_CONSTANT, GRAPH_OUTPUT)
                    for s in self.w.inputs[key].values())

    def title(self, key: str) -> str:
        node = self.w.nodes[key]
        return node.title if node.title is not None else self._display(key)

    def _display(self, key: str) -> str:
        return self.w.specs[key].display_name

    # -- values ---------------------------------------------------------------------------

    def reference(self, key: str, slot: int) -> str:
        if key in self.outputs:  # a graph.Output passes its value on
            source = self.w.inputs[key]["value"]
            return self.reference(source.node, source.slot)
        if key in self.inputs:
            return f"${{inputs.{self.inputs[key]}}}"
        outputs = self.w.slots[key].outputs
        name = outputs[slot][0] if 0 <= slot < len(outputs) else str(slot)
        return f"${{{self.ids[key]}.{name}}}"

    def linked_value(self, key: str) -> Any:
        """What an input fed by ``key`` holds in the graph file."""
        if self.kind(key) == GRAPH_TEMPLATE and key in self.absorbed:
            sources = self.w.inputs[key]
            return _PLACEHOLDER.sub(
                lambda m: self.reference(sources[m.group(1)].node, sources[m.group(1)].slot),
                self.values[key]["template"])
        values = self.values[key]
        value = decode_value(str(values.get("type", "JSON")), str(values.get("value", "")))
        return escape(value) if isinstance(value, str) else value

    def node_inputs(self, key: str) -> dict[str, Any]:
        slots, wired, values = self.w.slots[key], self.w.inputs[key], self.values[key]
        inputs: dict[str, Any] = {}
        for name in (i.name for i in self.w.specs[key].inputs if i.kind != "hidden"):
            source = wired.get(name)
            if source is not None:
                inputs[name] = self.linked_value(source.node) if source.node in self.absorbed \
                    else self.reference(source.node, source.slot)
                continue
            widget = slots.widget(name)
            if widget is None or name not in values or values[name] is None:
                continue
            value = values[name]
            if value != widget_default(widget) or isinstance(value, bool) != isinstance(
                    widget_default(widget), bool):
                inputs[name] = escape(value) if isinstance(value, str) else value
        return inputs


def workflow_to_graph(workflow: Any, registry: Registry, name: str | None = None) -> Graph:
    """Our graph for an editor workflow, with a ``ui:`` block for the editor's layout."""
    parsed = parse_workflow(workflow)
    wiring = Wiring(parsed, registry)
    reader = _Reader(wiring)
    reader.classify()
    own = (parsed.extra or {}).get("homepilot") or {}
    graph_inputs = {reader.inputs[k]: _graph_input(reader, k) for k in reader.inputs}
    nodes: dict[str, NodeInstance] = {}
    for key in wiring.sorted_keys():
        if key in reader.ids:
            node = wiring.nodes[key]
            title = reader.title(key)
            nodes[reader.ids[key]] = NodeInstance(
                type=node.type, inputs=reader.node_inputs(key),
                title=title if title != reader.ids[key] else None)
    outputs = {}
    for key, output in reader.outputs.items():
        source = wiring.inputs[key]["value"]
        outputs[output] = reader.reference(source.node, source.slot)
    return Graph(name=name or str(own.get("name") or "workflow"),
                 description=str(own.get("description") or ""), inputs=graph_inputs,
                 nodes=nodes, outputs=outputs, ui=_ui_block(parsed, reader))


def _graph_input(reader: _Reader, key: str) -> GraphInput:
    values = reader.values[key]
    port = str(values.get("type", "STRING"))
    text = values.get("value")
    text = "" if text is None else str(text)
    properties = reader.w.nodes[key].properties
    empty = text == "" and (properties.get(HAS_DEFAULT) is False or port != "STRING")
    meta = {k: properties[k] for k in INPUT_META if properties.get(k) is not None}
    return GraphInput(type=port, default=None if empty else decode_value(port, text), **meta)


def _ui_block(parsed: Any, reader: _Reader) -> dict[str, Any]:
    wiring = reader.w
    entries: dict[str, UiNodeEntry] = {}
    notes = []
    for key in wiring.sorted_keys():
        node = wiring.nodes[key]
        if node.type in NOTE_TYPES:
            notes.append(node.model_dump(mode="json", exclude_unset=True))
            continue
        entries[_entry_key(reader, key)] = _entry(reader, key, node)
    extra = dict(parsed.extra or {})
    ds = extra.pop("ds", None)
    extra.pop("homepilot", None)
    ids = [n.id for n in parsed.nodes if isinstance(n.id, int)]
    link_ids = [link[0] for link in parsed.links if link and isinstance(link[0], int)]
    block = UiBlock(
        nodes=entries, ds=ds, groups=parsed.groups or None, config=parsed.config or None,
        extra=extra or None, notes=notes or None,
        last_node_id=parsed.last_node_id if parsed.last_node_id != max(ids, default=0)
        else None,
        last_link_id=parsed.last_link_id if parsed.last_link_id != max(link_ids, default=0)
        else None,
        workflow_id=getattr(parsed, "id", None), revision=getattr(parsed, "revision", None))
    return block.model_dump(exclude_none=True)


def _entry_key(reader: _Reader, key: str) -> str:
    if key in reader.inputs:
        return input_key(reader.inputs[key])
    if key in reader.outputs:
        return output_key(reader.outputs[key])
    if key in reader.absorbed:
        target, name = reader.absorbed[key]
        return feeder_key(reader.ids[target], name)
    return reader.ids[key]


def _entry(reader: _Reader, key: str, node: UiNode) -> UiNodeEntry:
    ours = {SR_NAME, NODE_ID} | ({HAS_DEFAULT, *INPUT_META} if key in reader.inputs else set())
    properties = {k: v for k, v in node.properties.items() if k not in ours}
    controls = {k: v for k, v in reader.controls.get(key, {}).items() if v != CONTROL_FIXED}
    links = {name: source.link for name, source in reader.w.inputs[key].items()}
    part = reader.is_part(key)
    return UiNodeEntry(
        id=node.id, pos=list(node.pos), size=list(node.size),
        title=node.title if part else None, flags=node.flags or None,
        mode=node.mode or None, color=node.color, bgcolor=node.bgcolor,
        links=links or None, controls=controls or None, properties=properties or None)
