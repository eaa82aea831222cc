"""ComfyUI's UI-format workflow (schema 0.4), as its frontend saves and loads it.

Field names, order and optionality follow ``zComfyWorkflow`` / ``zComfyNode`` in
comfyui-frontend 1.58.1 (``src/platform/workflow/validation/schemas/workflowSchema.ts``)
and what ``LGraphNode.serialize`` writes. Unknown fields are kept (``extra="allow"``):
the frontend and its extensions add their own, and a workflow must survive a pass
through our converters.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import GraphLoadError

NodeId = int | str


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class WidgetRef(_Open):
    name: str


class InputSlot(_Open):
    name: str
    type: Any = "*"
    link: int | None = None
    # Present on inputs that are also widgets (every widget has an input socket since
    # frontend 1.16; linking it replaces the widget's value).
    widget: WidgetRef | None = None


class OutputSlot(_Open):
    name: str
    type: Any = "*"
    links: list[int] | None = None
    slot_index: int | None = None


class UiNode(_Open):
    id: NodeId
    type: str
    pos: list[int | float]
    size: list[int | float]
    flags: dict[str, Any] = Field(default_factory=dict)
    order: int = 0
    mode: int = 0
    inputs: list[InputSlot] = Field(default_factory=list)
    outputs: list[OutputSlot] = Field(default_factory=list)
    title: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    # A list in the order of the node's widgets; the frontend also reads an object by name.
    widgets_values: list[Any] | dict[str, Any] | None = None
    color: str | None = None
    bgcolor: str | None = None


class Workflow(_Open):
    last_node_id: NodeId = 0
    last_link_id: int = 0
    nodes: list[UiNode] = Field(default_factory=list)
    # [id, origin node, origin slot, target node, target slot, type]
    links: list[list[Any]] = Field(default_factory=list)
    groups: list[dict[str, Any]] = Field(default_factory=list)
    config: dict[str, Any] | None = Field(default_factory=dict)
    extra: dict[str, Any] | None = Field(default_factory=dict)
    version: float = 0.4


# LGraphEventMode: what a node's ``mode`` means.
MODE_ALWAYS = 0
MODE_NEVER = 2   # muted: not run, and what it feeds loses that input
MODE_BYPASS = 4  # skipped: its inputs pass through to its outputs by type


def parse_workflow(data: Any) -> Workflow:
    """Validate a UI workflow; a clear ``GraphLoadError`` when it is not one."""
    if not isinstance(data, dict) or "nodes" not in data or not isinstance(data["nodes"], list):
        raise GraphLoadError("a UI workflow is an object with a 'nodes' list (what the "
                             "editor saves), not this")
    if data.get("version") == 1 or "state" in data and "last_node_id" not in data:
        raise GraphLoadError("this workflow uses schema version 1 (links as objects); save it "
                             "from the editor again, which writes version 0.4")
    try:
        return Workflow.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                             for err in exc.errors()[:5])
        raise GraphLoadError(f"the workflow does not follow ComfyUI's format: {problems}") \
            from exc


def is_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and (
        "links" in data or "last_node_id" in data)
