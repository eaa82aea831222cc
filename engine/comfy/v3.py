"""V3 ComfyUI nodes (``io.ComfyNode`` with ``define_schema``/``execute``) as ``NodeDef``s."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from engine.comfy.values import call_with_accepted
from engine.context import NodeContext, active
from engine.spec import InputSpec, NodeDef, NodeResult, NodeSpec, OutputSpec


def run_coroutine(value: Any) -> Any:
    """Await a coroutine from synchronous code, even when a loop runs in this thread."""
    if not inspect.isawaitable(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wrap(value))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _wrap(value)).result()


async def _wrap(awaitable: Any) -> Any:
    return await awaitable


def adapt(cls: type, module: str) -> NodeDef:
    schema = cls.define_schema()
    inputs = [InputSpec(
        name=i.id, type=i.io_type, kind="optional" if i.optional else "required",
        default=i.default if i.default is not None or not i.options else i.options[0],
        min=i.min, max=i.max, step=i.step, choices=i.options, multiline=i.multiline,
        link_only=i.force_input, description=i.tooltip or "") for i in schema.inputs]
    outputs = [OutputSpec(name=o.id or o.display_name or o.io_type, type=o.io_type,
                          is_list=o.is_output_list, description=o.tooltip or "")
               for o in schema.outputs]
    spec = NodeSpec(type=schema.node_id, display_name=schema.display_name or schema.node_id,
                    category=schema.category, description=schema.description, inputs=inputs,
                    outputs=outputs, output_node=schema.is_output_node,
                    input_is_list=schema.is_input_list,
                    deterministic=not schema.not_idempotent, source=module, api="comfy_v3")
    count = len(outputs)

    def execute(values: dict[str, Any], ctx: NodeContext) -> NodeResult:
        with active(ctx):
            produced = run_coroutine(cls.execute(**values))
        args = tuple(getattr(produced, "args", produced or ()))
        args = (args + (None,) * count)[:count]
        ui = getattr(produced, "ui", None)
        if ui is not None and not isinstance(ui, dict):
            ui = ui.as_dict() if hasattr(ui, "as_dict") else {"value": [str(ui)]}
        return NodeResult(args, ui)

    is_changed = None
    if hasattr(cls, "fingerprint_inputs"):
        def is_changed(consts: dict[str, Any]) -> Any:
            return run_coroutine(call_with_accepted(cls.fingerprint_inputs, consts))
    validate = None
    if hasattr(cls, "validate_inputs"):
        def validate(consts: dict[str, Any]) -> list[tuple[str | None, str]]:
            outcome = run_coroutine(call_with_accepted(cls.validate_inputs, consts))
            return [] if outcome is True else [(None, str(outcome))]
    return NodeDef(spec=spec, execute=execute, is_changed=is_changed, validate_inputs=validate)
