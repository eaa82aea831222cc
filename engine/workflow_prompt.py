"""An editor workflow as the API prompt its Run button sends: ``workflow_to_prompt``.

Follows comfyui-frontend 1.58.1 ``utils/executionUtil.ts graphToPrompt`` and
``ExecutableNodeDTO.resolveInput/resolveOutput``:

- every widget's value by name, except widgets with ``options.serialize === false``
  (the ``control_after_generate`` combo, the upload button); array values wrapped as
  ``{"__value__": [...]}``;
- then every linked input as ``[origin id (text), origin slot]``, replacing a widget's
  value when the widget's input is linked;
- muted nodes (mode 2) and bypassed nodes (mode 4) are left out; a link from a muted
  node is dropped, a link from a bypassed node is followed through the bypassed node's
  input of the same slot when its type fits, else its first input of a matching type;
- ``_meta.title`` is the node's title (its display name when it has none);
- nodes the frontend runs nothing for (Note, MarkdownNote) are skipped.

One difference on purpose: an optional widget holding null (an input the graph leaves
out, which no widget can express) is left out instead of sent as null.
"""

from __future__ import annotations

from typing import Any

from engine import types as t
from engine.registry import Registry
from engine.workflow_model import MODE_BYPASS, MODE_NEVER, parse_workflow
from engine.workflow_read import NOTE_TYPES, Source, Wiring, read_widgets


def workflow_to_prompt(workflow: Any, registry: Registry) -> dict[str, Any]:
    """``{"<id>": {"inputs": {...}, "class_type": ..., "_meta": {"title": ...}}}``."""
    wiring = Wiring(parse_workflow(workflow), registry)
    prompt: dict[str, Any] = {}
    for key in _execution_order(wiring):
        node = wiring.nodes[key]
        if node.type in NOTE_TYPES or node.mode in (MODE_NEVER, MODE_BYPASS):
            continue
        slots = wiring.slots[key]
        values, _ = read_widgets(node, slots)
        inputs: dict[str, Any] = {}
        for widget in slots.widgets:
            if widget.spec is None or widget.name not in values:
                continue  # the upload button is not sent (options.serialize = false)
            value = values[widget.name]
            if value is None and widget.spec.kind == "optional":
                continue
            inputs[widget.name] = {"__value__": value} if isinstance(value, list) else value
        for name, source in wiring.inputs[key].items():
            resolved = _resolve(wiring, source, slots.input_type(name), set())
            if resolved is not None:
                inputs[name] = [resolved.node, resolved.slot]
        title = node.title if node.title is not None else wiring.specs[key].display_name
        prompt[key] = {"inputs": inputs, "class_type": node.type, "_meta": {"title": title}}
    for body in prompt.values():  # inputs from nodes that were left out go too
        inputs = body["inputs"]
        for name in [n for n, v in inputs.items() if _is_link(v) and v[0] not in prompt]:
            del inputs[name]
    return prompt


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _resolve(wiring: Wiring, source: Source, wanted: str, seen: set[str]) -> Source | None:
    """Where a link really comes from once bypassed nodes are passed through."""
    node = wiring.nodes.get(source.node)
    if node is None or node.mode == MODE_NEVER or node.type in NOTE_TYPES:
        return None
    if node.mode != MODE_BYPASS:
        return source
    if source.node in seen:
        return None  # the frontend raises on a loop of bypassed nodes; we drop the input
    seen.add(source.node)
    slots = wiring.slots[source.node]
    names = slots.input_names
    index = _bypass_slot(slots, names, source.slot, wanted)
    if index < 0:
        return None
    upstream = wiring.inputs[source.node].get(names[index])
    return _resolve(wiring, upstream, wanted, seen) if upstream is not None else None


def _bypass_slot(slots: Any, names: list[str], slot: int, wanted: str) -> int:
    """``ExecutableNodeDTO._getBypassSlotIndex``."""
    if wanted in (t.ANY, ""):
        return slot if len(names) > slot else 0
    output_type = slots.outputs[slot][1] if slot < len(slots.outputs) else t.ANY
    types = [slots.input_type(n) for n in names]
    if slot < len(names) and _valid(types[slot], output_type) and _valid(types[slot], wanted):
        return slot
    if wanted in types:
        return types.index(wanted)
    return next((i for i, kind in enumerate(types)
                 if _valid(kind, output_type) and _valid(kind, wanted)), -1)


def _valid(a: str, b: str) -> bool:
    """litegraph's ``isValidConnection``: "*" or "" fits all; else a shared type, ignoring
    case, with comma-separated alternatives."""
    if a in ("", t.ANY) or b in ("", t.ANY) or a == b:
        return True
    first = {p.strip().lower() for p in a.split(",")}
    second = {p.strip().lower() for p in b.split(",")}
    return bool(first & second)


def _execution_order(wiring: Wiring) -> list[str]:
    """Nodes sources first (the frontend sends them in execution order), ties by the
    workflow's own ``order`` then id."""
    import networkx as nx

    dag = nx.DiGraph()
    keys = wiring.sorted_keys()
    rank = {key: (wiring.nodes[key].order, index) for index, key in enumerate(keys)}
    dag.add_nodes_from(keys)
    dag.add_edges_from((s.node, key) for key in keys for s in wiring.inputs[key].values())
    try:
        return list(nx.lexicographical_topological_sort(dag, key=lambda k: rank[k]))
    except nx.NetworkXUnfeasible:
        return keys  # a cycle: the engine reports it when the prompt is compiled
