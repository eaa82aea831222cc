"""Running one plan node: gathering its inputs and ComfyUI's list semantics.

Shared by every executor so that they cannot differ in what a node receives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.context import NodeContext
from engine.plan import PlanNode
from engine.reference import render
from engine.spec import NodeResult

# node id -> that node's output values
Lookup = Callable[[str], tuple[Any, ...]]


def gather(node: PlanNode, lookup: Lookup) -> dict[str, Any]:
    """The node's inputs: constants, linked values and rendered templates."""
    inputs = dict(node.consts) if node.consts else {}
    for name, (source, index) in node.links.items():
        inputs[name] = lookup(source)[index]
    for name, template in node.templates.items():
        values = {ref: lookup(src)[idx] for ref, (src, idx) in template.links.items()}
        if name in node.list_inputs:
            # A template over list values renders once per item.
            length = max((len(v) for v in values.values() if isinstance(v, list)), default=0)
            inputs[name] = [render(template.template,
                                   {r: _item(v, i) if isinstance(v, list) else v
                                    for r, v in values.items()}) for i in range(length)]
        else:
            inputs[name] = render(template.template, values)
    return inputs


def _item(values: list[Any], index: int) -> Any:
    # ComfyUI repeats a shorter list's last item.
    return values[min(index, len(values) - 1)]


def execute(node: PlanNode, inputs: dict[str, Any], ctx: NodeContext) -> NodeResult:
    """Run the node once, or once per list item when it is mapped."""
    definition = node.definition
    if definition.spec.input_is_list:
        wrapped = {k: v if k in node.list_inputs else [v] for k, v in inputs.items()}
        return definition.execute(wrapped, ctx)
    if not node.mapped:
        return definition.execute(inputs, ctx)
    lists = {k: v for k, v in inputs.items() if k in node.list_inputs}
    length = max((len(v) for v in lists.values()), default=0)
    if any(len(v) == 0 for v in lists.values()):
        length = 0
    outputs = definition.spec.outputs
    collected: list[list[Any]] = [[] for _ in outputs]
    ui: dict[str, list[Any]] = {}
    for index in range(length):
        ctx.check_cancelled()
        item_inputs = {k: _item(v, index) if k in lists else v for k, v in inputs.items()}
        result = definition.execute(item_inputs, ctx)
        for position, value in enumerate(result.values):
            if outputs[position].is_list and isinstance(value, list):
                collected[position].extend(value)
            else:
                collected[position].append(value)
        for key, shown in (result.ui or {}).items():
            ui.setdefault(key, []).extend(shown if isinstance(shown, list) else [shown])
    return NodeResult(tuple(collected), ui or None)
