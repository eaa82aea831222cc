"""The graph model: typed inputs, node instances, outputs. Pure data, no behaviour."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GraphInput(BaseModel):
    """A named input of the whole graph, referenced as ``${inputs.<name>}``."""

    model_config = ConfigDict(extra="forbid")

    type: str = "STRING"
    default: Any = None
    required: bool | None = None  # None: required exactly when there is no default
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None
    description: str = ""

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class NodeInstance(BaseModel):
    """One node of a graph: its type id and the values or references of its inputs."""

    model_config = ConfigDict(extra="forbid")

    type: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    title: str | None = None


class Graph(BaseModel):
    """A workflow graph as written in ``graphs/*.yaml`` (or loaded from ComfyUI JSON)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    name: str = "graph"
    description: str = ""
    inputs: dict[str, GraphInput] = Field(default_factory=dict)
    nodes: dict[str, NodeInstance] = Field(default_factory=dict)
    # Output name -> "${node.output}" reference.
    outputs: dict[str, str] = Field(default_factory=dict)
    # "homepilot" for our own files; "comfy" for ComfyUI API-format prompts, whose
    # extra inputs are ignored the way ComfyUI ignores them.
    format: Literal["homepilot", "comfy"] = "homepilot"
    # How the visual editor shows the graph (node ids, positions, sizes, link ids, view):
    # written by engine.workflow when a workflow is saved as a graph; the engine ignores it.
    ui: dict[str, Any] | None = None
