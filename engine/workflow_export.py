"""A graph as ComfyUI's editor workflow (UI format 0.4): ``graph_to_workflow``.

Graph inputs become graph.Input nodes, graph outputs graph.Output nodes, template strings
graph.Template nodes and constants given to inputs that only take links graph.Constant
nodes (see ``nodes/graph.py``). The YAML node id is the editor node's title. Ids, links,
positions and sizes come from the graph's ``ui:`` block where it has them (a graph saved
from the editor), otherwise they are numbered in order and laid out in columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine import workflow_layout as lay
from engine.errors import GraphLoadError
from engine.graph import Graph, GraphInput
from engine.reference import Ref, Template, escape, parse, unescape
from engine.registry import Registry
from engine.spec import NodeSpec
from engine.workflow_slots import CONTROL_FIXED, NodeSlots, node_slots, widget_default
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
    valid_id,
)
from engine.workflow_values import PORT_TYPES, TEMPLATE_SLOTS, encode_value, value_type

GRAPH_INPUT, GRAPH_OUTPUT = "graph.Input", "graph.Output"
GRAPH_TEMPLATE, GRAPH_CONSTANT = "graph.Template", "graph.Constant"


@dataclass(slots=True)
class Planned:
    """One editor node before ids and positions are known."""

    key: str
    spec: NodeSpec
    slots: NodeSlots
    values: dict[str, Any] = field(default_factory=dict)       # widget name -> value
    links: dict[str, tuple[str, int]] = field(default_factory=dict)  # input -> (key, slot)
    title: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    regular_id: str | None = None   # the graph's node id, for its graph nodes
    pin: str = ""
    before: str | None = None


class _Planner:
    def __init__(self, graph: Graph, registry: Registry) -> None:
        self.graph, self.registry = graph, registry
        self.planned: list[Planned] = []

    def spec(self, type_id: str, where: str) -> NodeSpec:
        definition = self.registry.get(type_id)
        if definition is None:
            raise GraphLoadError(f"{where}: node type '{type_id}' is not installed, so the "
                                 "editor cannot show it (see `homepilot nodes`)")
        return definition.spec

    def add(self, key: str, type_id: str, where: str, **fields: Any) -> Planned:
        spec = self.spec(type_id, where)
        item = Planned(key, spec, node_slots(spec), **fields)
        self.planned.append(item)
        return item

    def source(self, ref: Ref, where: str) -> tuple[str, int]:
        if ref.is_graph_input:
            if ref.name not in self.graph.inputs:
                raise GraphLoadError(f"{where}: {ref} names a graph input that is not declared")
            return input_key(ref.name), 0
        node = self.graph.nodes.get(ref.source)
        if node is None:
            raise GraphLoadError(f"{where}: {ref} links to node '{ref.source}', which is not "
                                 "in the graph")
        index = self.spec(node.type, f"node '{ref.source}'").output_index(ref.name)
        if index is None:
            raise GraphLoadError(f"{where}: node '{ref.source}' ({node.type}) has no output "
                                 f"'{ref.name}'")
        return ref.source, index

    def plan(self) -> list[Planned]:
        for name, spec in self.graph.inputs.items():
            self.graph_input(name, spec)
        for node_id, instance in self.graph.nodes.items():
            self.node(node_id, instance.type, instance.inputs, instance.title)
        for name, value in self.graph.outputs.items():
            ref = parse(value)
            where = f"graph output '{name}'"
            if not isinstance(ref, Ref) or ref.is_graph_input:
                raise GraphLoadError(f"{where} must be one ${{node.output}} reference, not "
                                     f"{value!r}")
            if self._names_itself(ref, name):
                continue
            self.add(output_key(name), GRAPH_OUTPUT, where, values={"name": name},
                     links={"value": self.source(ref, where)}, pin="last")
        return self.planned

    def _names_itself(self, ref: Ref, name: str) -> bool:
        """An API prompt's graph.Output node already is the output it names
        (``engine.loader.graph_from_comfy``)."""
        node = self.graph.nodes.get(ref.source)
        return self.graph.format == "comfy" and node is not None \
            and node.type == GRAPH_OUTPUT and node.inputs.get("name") == name \
            and ref.name in ("value", "0")

    def graph_input(self, name: str, spec: GraphInput) -> None:
        if spec.type not in PORT_TYPES:
            raise GraphLoadError(f"graph input '{name}' is of type {spec.type}; the editor's "
                                 f"graph inputs take {', '.join(PORT_TYPES)}")
        text = "" if spec.default is None else encode_value(spec.type, spec.default)
        properties: dict[str, Any] = {}
        for key in INPUT_META:
            value = getattr(spec, key)
            if value is not None and value != "":
                properties[key] = value
        if spec.default is None:
            properties[HAS_DEFAULT] = False
        self.add(input_key(name), GRAPH_INPUT, f"graph input '{name}'",
                 values={"name": name, "type": spec.type, "value": text},
                 properties=properties, pin="first")

    def node(self, node_id: str, type_id: str, inputs: dict[str, Any],
             title: str | None) -> None:
        where = f"node '{node_id}'"
        spec = self.spec(type_id, where)
        slots = node_slots(spec)
        item = Planned(node_id, spec, slots, title=title or node_id, regular_id=node_id)
        for name, value in inputs.items():
            here = f"{where} input '{name}'"
            if spec.input(name) is None or spec.input(name).kind == "hidden":  # type: ignore[union-attr]
                if self.graph.format == "comfy":
                    continue  # ComfyUI ignores inputs a node does not declare
                raise GraphLoadError(f"{here}: {type_id} has no such input")
            reference = parse(value)
            if isinstance(reference, Ref):
                item.links[name] = self.source(reference, here)
            elif isinstance(reference, Template):
                item.links[name] = (self.template(node_id, name, reference, here), 0)
            elif slots.widget(name) is not None:
                item.values[name] = unescape(value) if isinstance(value, str) else value
            else:
                item.links[name] = (self.constant(node_id, name, value, here), 0)
        for widget in slots.widgets:
            if widget.name not in item.values:
                absent = widget.spec is not None and widget.name not in item.links \
                    and widget.spec.kind == "optional" and widget.spec.default is None
                # null: an optional input left out (the frontend has no "unset" widget)
                item.values[widget.name] = None if absent else widget_default(widget)
        self.planned.append(item)

    def template(self, node_id: str, name: str, template: Template, where: str) -> str:
        refs = list(dict.fromkeys(template.refs))
        if len(refs) > len(TEMPLATE_SLOTS):
            raise GraphLoadError(f"{where}: a template the editor shows may name at most "
                                 f"{len(TEMPLATE_SLOTS)} different values, not {len(refs)}")
        slot_of = dict(zip(refs, TEMPLATE_SLOTS, strict=False))
        text = "".join(escape(part) if isinstance(part, str) else f"${{{slot_of[part]}}}"
                       for part in template.parts)
        key = feeder_key(node_id, name)
        self.add(key, GRAPH_TEMPLATE, where, values={"template": text},
                 links={slot_of[ref]: self.source(ref, where) for ref in refs},
                 before=node_id)
        return key

    def constant(self, node_id: str, name: str, value: Any, where: str) -> str:
        value = unescape(value) if isinstance(value, str) else value
        port = value_type(value)
        key = feeder_key(node_id, name)
        self.add(key, GRAPH_CONSTANT, where, before=node_id,
                 values={"type": port, "value": encode_value(port, value)})
        return key


def graph_to_workflow(graph: Graph, registry: Registry) -> dict[str, Any]:
    """The UI-format workflow (what ComfyUI's editor loads and saves) for ``graph``."""
    ui = UiBlock.model_validate(graph.ui or {})
    planned = _Planner(graph, registry).plan()
    ids = _node_ids(planned, ui)
    _name_nodes(planned, ids, ui, graph.format)
    link_ids = _link_ids(planned, ui)
    sizes, positions = _geometry(planned, ui)
    order = _execution_order(planned)
    links: list[list[Any]] = []
    outgoing: dict[tuple[str, int], list[int]] = {}
    for item in planned:
        names = item.slots.input_names
        for name, (source, slot) in item.links.items():
            link_id = link_ids[(item.key, name)]
            links.append([link_id, ids[source], slot, ids[item.key], names.index(name),
                          item.slots.input_type(name)])
            outgoing.setdefault((source, slot), []).append(link_id)
    nodes = [_ui_node(item, ids, link_ids, outgoing, sizes, positions, order, ui)
             for item in planned] + [dict(note) for note in ui.notes or []]
    nodes.sort(key=lambda node: _sortable(node["id"]))
    links.sort(key=lambda link: link[0])
    return _envelope(graph, ui, nodes, links, ids, positions, sizes)


def _sortable(node_id: int | str) -> tuple[int, int | str]:
    return (0, node_id) if isinstance(node_id, int) else (1, node_id)


def _node_ids(planned: list[Planned], ui: UiBlock) -> dict[str, int | str]:
    ids: dict[str, int | str] = {}
    used: set[int | str] = {note.get("id") for note in ui.notes or []}
    for item in planned:
        entry = ui.nodes.get(item.key)
        if entry is not None and entry.id not in used:
            ids[item.key] = entry.id
            used.add(entry.id)
    counter = max((i for i in used if isinstance(i, int)), default=0)
    for item in planned:
        if item.key not in ids:
            counter += 1
            ids[item.key] = counter
    return ids


def _link_ids(planned: list[Planned], ui: UiBlock) -> dict[tuple[str, str], int]:
    ids: dict[tuple[str, str], int] = {}
    used: set[int] = set()
    for item in planned:
        stored = (ui.nodes.get(item.key) or UiNodeEntry(id=0)).links or {}
        for name in item.links:
            if name in stored and stored[name] not in used:
                ids[(item.key, name)] = stored[name]
                used.add(stored[name])
    counter = max(used, default=0)
    for item in planned:
        for name in _in_slot_order(item):
            if (item.key, name) not in ids:
                counter += 1
                ids[(item.key, name)] = counter
    return ids


def _in_slot_order(item: Planned) -> list[str]:
    return [n for n in item.slots.input_names if n in item.links]


def _name_nodes(planned: list[Planned], ids: dict[str, int | str], ui: UiBlock,
                graph_format: str) -> None:
    """Titles, and a node_id property where the title alone would not give back the id
    (``workflow_import`` derives ids from titles in editor-id order)."""
    for item in planned:
        entry = ui.nodes.get(item.key)
        if item.regular_id is None:
            item.title = entry.title if entry is not None else None
            item.properties = {**(entry.properties or {} if entry else {}), **item.properties}
            continue
        if entry is not None and entry.properties:
            item.properties = {**entry.properties, **item.properties}
        if item.spec.type in (GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_TEMPLATE, GRAPH_CONSTANT) \
                and graph_format == "homepilot":
            # A graph file that names one as a node keeps it a node. In an API prompt
            # they are the editor's own graph parts, and read back as such.
            item.properties[NODE_ID] = item.regular_id
    if graph_format == "comfy":
        return  # an API prompt's ids are numbers: read back, titles name the nodes
    regular = sorted((p for p in planned if p.regular_id is not None),
                     key=lambda p: _sortable(ids[p.key]))
    while True:
        derived = derive_ids((p.key, p.title or "", p.properties.get(NODE_ID)) for p in regular)
        wrong = [p for p in regular if derived[p.key] != p.regular_id
                 and NODE_ID not in p.properties and valid_id(p.regular_id or "")]
        if not wrong:
            return
        for item in wrong:
            item.properties[NODE_ID] = item.regular_id


def _geometry(planned: list[Planned], ui: UiBlock
              ) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    sizes: dict[str, tuple[float, float]] = {}
    boxes = []
    for item in planned:
        entry = ui.nodes.get(item.key)
        if entry is not None and entry.size is not None and len(entry.size) == 2:
            sizes[item.key] = (entry.size[0], entry.size[1])
        else:
            sizes[item.key] = _estimate(item)
        boxes.append(lay.Box(item.key, sizes[item.key], [s for s, _ in item.links.values()],
                             item.pin, item.before))
    fresh = lay.layout(boxes)
    kept = {p.key: (e.pos[0], e.pos[1]) for p in planned
            if (e := ui.nodes.get(p.key)) is not None and e.pos is not None and len(e.pos) == 2}
    if kept:  # nodes added by hand go below what the editor arranged
        below = max(kept[k][1] + sizes[k][1] for k in kept) + 2 * lay.TITLE_HEIGHT
        fresh = {k: (x, y + below) for k, (x, y) in fresh.items()}
    return sizes, {p.key: kept.get(p.key, fresh[p.key]) for p in planned}


def _estimate(item: Planned) -> tuple[float, float]:
    widgets = []
    for widget in item.slots.widgets:
        value = item.values.get(widget.name)
        widgets.append((widget.name, "" if value is None else str(value),
                        widget.spec is not None and widget.spec.multiline))
        if widget.control:
            widgets.append(("control after generate", CONTROL_FIXED, False))
    return lay.node_size(item.title or item.spec.display_name,
                         [s.name for s in item.slots.sockets],
                         [name for name, _ in item.slots.outputs], widgets,
                         preview=item.spec.type in lay.TEXT_PREVIEW)


def _execution_order(planned: list[Planned]) -> dict[str, int]:
    """``order``: a topological position, as the frontend's computeExecutionOrder gives."""
    import networkx as nx

    dag = nx.DiGraph()
    for index, item in enumerate(planned):
        dag.add_node(item.key, rank=index)
    dag.add_edges_from((src, p.key) for p in planned for src, _ in p.links.values())
    ranks = {p.key: i for i, p in enumerate(planned)}
    return {key: i for i, key in enumerate(nx.lexicographical_topological_sort(
        dag, key=lambda k: ranks[k]))}


def _ui_node(item: Planned, ids: dict[str, int | str], link_ids: dict[tuple[str, str], int],
             outgoing: dict[tuple[str, int], list[int]], sizes: dict[str, tuple[float, float]],
             positions: dict[str, tuple[float, float]], order: dict[str, int],
             ui: UiBlock) -> dict[str, Any]:
    entry = ui.nodes.get(item.key)
    inputs: list[dict[str, Any]] = []
    for socket in item.slots.sockets:
        inputs.append({"name": socket.name, "type": socket.type,
                       "link": link_ids.get((item.key, socket.name))})
    for widget in item.slots.widgets:
        inputs.append({"name": widget.name, "type": widget.type,
                       "widget": {"name": widget.name},
                       "link": link_ids.get((item.key, widget.name))})
    outputs = [{"name": name, "type": port, "links": outgoing.get((item.key, index), []),
                "slot_index": index}
               for index, (name, port) in enumerate(item.slots.outputs)]
    controls = (entry.controls if entry is not None else None) or {}
    values: list[Any] = []
    for widget in item.slots.widgets:
        values.append(item.values.get(widget.name))
        if widget.control:
            values.append(controls.get(widget.name, CONTROL_FIXED))
    node: dict[str, Any] = {
        "id": ids[item.key], "type": item.spec.type,
        "pos": list(positions[item.key]), "size": list(sizes[item.key]),
        "flags": dict((entry.flags if entry else None) or {}), "order": order[item.key],
        "mode": (entry.mode if entry else None) or 0, "inputs": inputs, "outputs": outputs}
    if item.title is not None and item.title != item.spec.display_name:
        node["title"] = item.title
    node["properties"] = {SR_NAME: item.spec.type, **item.properties}
    if item.slots.widgets:
        node["widgets_values"] = values
    for key in ("color", "bgcolor"):
        if entry is not None and getattr(entry, key):
            node[key] = getattr(entry, key)
    return node


def _envelope(graph: Graph, ui: UiBlock, nodes: list[dict[str, Any]], links: list[list[Any]],
              ids: dict[str, int | str], positions: dict[str, tuple[float, float]],
              sizes: dict[str, tuple[float, float]]) -> dict[str, Any]:
    numeric = [n["id"] for n in nodes if isinstance(n["id"], int)]
    last_node = max([*numeric, ui.last_node_id if isinstance(ui.last_node_id, int) else 0],
                    default=0)
    last_link = max([link[0] for link in links] + [ui.last_link_id or 0], default=0)
    extra: dict[str, Any] = {**(ui.extra or {})}
    extra["ds"] = ui.ds if ui.ds is not None else lay.view(positions, sizes)
    extra["homepilot"] = {"name": graph.name, "description": graph.description}
    workflow: dict[str, Any] = {}
    if ui.workflow_id is not None:
        workflow["id"] = ui.workflow_id
    if ui.revision is not None:
        workflow["revision"] = ui.revision
    workflow.update({"last_node_id": last_node, "last_link_id": last_link, "nodes": nodes,
                     "links": links, "groups": list(ui.groups or []),
                     "config": dict(ui.config or {}), "extra": extra, "version": 0.4})
    return workflow
