"""Small helpers shared by the ComfyUI adapters."""

from __future__ import annotations

import inspect
from typing import Any

from engine.spec import NodeResult


def call_with_accepted(function: Any, values: dict[str, Any]) -> Any:
    """Call with the keyword arguments the function declares (ComfyUI passes only those)."""
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return function(**values)
    return function(**{k: v for k, v in values.items() if k in parameters})


def unpack_result(produced: Any, count: int) -> NodeResult:
    """A tuple, ``{"ui": ..., "result": ...}``, or None (an output node that only shows)."""
    ui = None
    if isinstance(produced, dict):
        ui = produced.get("ui")
        produced = produced.get("result", ())
    if produced is None:
        produced = ()
    values = tuple(produced)
    if len(values) < count:
        values = values + (None,) * (count - len(values))
    return NodeResult(values[:count] if count else (), ui)
