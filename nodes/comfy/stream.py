"""One streamed call into a model host, its steps reported as the node's progress."""

from __future__ import annotations

from typing import Any

from engine.sdk import NodeContext
from nodes.comfy.value import Component


def host(ctx: NodeContext, component: Component) -> Any:
    return ctx.model(component.kind, component.model)


def streamed(ctx: NodeContext, handle: Any, method: str, result: str, **call: Any) -> Any:
    """Stream ``method`` from the host; returns the final update's ``result`` value. Step
    updates become progress (with the latest preview); a cancelled run stops the host."""
    final: Any = None
    stream = handle.stream(method, **call)
    try:
        for batch in stream:
            steps = [u for u in batch if "step" in u]
            for update in batch:
                if result in update:
                    final = update[result]
            if steps:
                previews = [u["preview"] for u in steps if u.get("preview")]
                ctx.progress(steps[-1]["step"], steps[-1]["total"],
                             preview=previews[-1] if previews else None)
    finally:
        stream.close()
    if final is None:
        raise RuntimeError(f"model {handle.id} returned no {result}")
    return final
