"""Reading a parsed UI workflow: which link feeds which input, and widget values by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import GraphLoadError
from engine.registry import Registry
from engine.spec import NodeSpec
from engine.workflow_model import UiNode, Workflow
from engine.workflow_slots import NodeSlots, node_slots

# Node types the frontend defines itself: they never reach a run.
NOTE_TYPES = ("Note", "MarkdownNote")


@dataclass(frozen=True, slots=True)
class Source:
    node: str   # the origin node's id, as text
    slot: int
    link: int


class Wiring:
    """A workflow's nodes by id (as text) and, per node, the link on each input name."""

    def __init__(self, workflow: Workflow, registry: Registry) -> None:
        self.workflow = workflow
        self.nodes: dict[str, UiNode] = {}
        self.slots: dict[str, NodeSlots] = {}
        self.specs: dict[str, NodeSpec] = {}
        for node in workflow.nodes:
            key = str(node.id)
            if key in self.nodes:
                raise GraphLoadError(f"the workflow has two nodes with id {key}")
            self.nodes[key] = node
            if node.type in NOTE_TYPES:
                continue
            definition = registry.get(node.type)
            if definition is None:
                title = f" ('{node.title}')" if node.title else ""
                raise GraphLoadError(f"workflow node {key}{title} is of type '{node.type}', "
                                     "which is not installed (see `homepilot nodes`)")
            self.specs[key] = definition.spec
            self.slots[key] = node_slots(definition.spec)
        links: dict[int, list[Any]] = {}
        for link in workflow.links:
            if len(link) >= 5 and isinstance(link[0], int):
                links[link[0]] = link
        self.inputs: dict[str, dict[str, Source]] = {}
        self.outgoing: dict[str, list[tuple[str, str]]] = {}  # node -> [(target, input)]
        for key, node in self.nodes.items():
            wired: dict[str, Source] = {}
            for slot in node.inputs:
                link = links.get(slot.link) if slot.link is not None else None
                if link is None or str(link[1]) not in self.nodes:
                    continue  # a dangling link: the frontend drops it on load too
                wired[slot.name] = Source(str(link[1]), int(link[2]), int(link[0]))
                self.outgoing.setdefault(str(link[1]), []).append((key, slot.name))
            self.inputs[key] = wired

    def sorted_keys(self) -> list[str]:
        """Node ids in editor-id order (numbers first, by value)."""
        return sorted(self.nodes, key=lambda k: (0, int(k), "") if k.lstrip("-").isdigit()
                      else (1, 0, k))


def read_widgets(node: UiNode, slots: NodeSlots) -> tuple[dict[str, Any], dict[str, Any]]:
    """(widget values by name, control_after_generate values by widget name).

    ``widgets_values`` lists every widget the frontend serialises, the control combo
    right after its seed; a workflow saved before a node grew its control (one value per
    widget) is read without them, as the frontend's ``migrateWidgetsValues`` does.
    """
    raw = node.widgets_values
    if raw is None:
        return {}, {}
    if isinstance(raw, dict):
        return {w.name: raw[w.name] for w in slots.widgets if w.name in raw}, {}
    with_controls = len(raw) != len(slots.widgets) or slots.values_count() == len(raw)
    values: dict[str, Any] = {}
    controls: dict[str, Any] = {}
    position = 0
    for widget in slots.widgets:
        if position >= len(raw):
            break
        values[widget.name] = raw[position]
        position += 1
        if widget.control and with_controls:
            if position < len(raw):
                controls[widget.name] = raw[position]
            position += 1
    return values, controls
