"""What a node is to the engine: its schema (``NodeSpec``) and how to run it (``NodeDef``).

Our SDK nodes and adapted ComfyUI nodes both end up as a ``NodeDef``; validation, the
scheduler and the executors know nothing else about them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from engine.context import NodeContext


class Resources(BaseModel):
    """What a node needs to run; executors turn it into placement (Ray task options)."""

    cpu: float | None = None       # logical CPUs; None = the executor's default
    gpu: float = 0.0               # GPU fraction; > 0 asks for a GPU
    memory: int | None = None      # bytes
    prefer_gpu: bool = False       # True: use a GPU when the cluster has one, else run on CPU

    @property
    def requires_gpu(self) -> bool:
        return self.gpu > 0 and not self.prefer_gpu


class InputSpec(BaseModel):
    name: str
    type: str
    kind: Literal["required", "optional", "hidden"] = "required"
    default: Any = None
    min: int | float | None = None  # an int bound stays exact (seeds reach 2^64-1)
    max: int | float | None = None  # an int bound stays exact (seeds reach 2^64-1)
    step: float | None = None
    choices: list[Any] | None = None
    multiline: bool = False
    description: str = ""
    # ComfyUI's forceInput / V3 link-only inputs: must be linked, never a constant.
    link_only: bool = False
    # Open choices: the editor lists values computed when it asks ("models:<kind>[,<kind>]"
    # for the installed models of those kinds, "input_images" for the pictures in the input
    # folder, "folder:<name>" for a ComfyUI model folder's files; "a|b" for both), plus the
    # fixed ``suggestions``. Never enforced: a graph may name a model or
    # file that is not listed (yet); the node finds out when it runs.
    options_from: str | None = None
    suggestions: list[Any] | None = None


class OutputSpec(BaseModel):
    name: str
    type: str
    is_list: bool = False
    description: str = ""


class NodeSpec(BaseModel):
    """A node type's schema: what ``homepilot nodes --json`` and the editor show."""

    type: str
    display_name: str
    category: str
    description: str = ""
    version: str = "1.0.0"
    inputs: list[InputSpec] = Field(default_factory=list)
    outputs: list[OutputSpec] = Field(default_factory=list)
    resources: Resources | None = None
    model_kind: str | None = None
    deterministic: bool = True
    # Safe to run again if its worker dies mid-way (no effect outside the engine, such as
    # a paid call to a remote provider); the Ray executor then retries it once.
    idempotent: bool = True
    output_node: bool = False
    input_is_list: bool = False
    source: str = "builtin"          # "builtin", "nodes" (ComfyUI's core) or "custom_nodes.<pack>"
    api: Literal["homepilot", "comfy", "comfy_v3"] = "homepilot"

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    def output_index(self, name: str) -> int | None:
        """An output by name, or by position written as digits (ComfyUI links)."""
        if name.isdigit():
            index = int(name)
            return index if index < len(self.outputs) else None
        for index, spec in enumerate(self.outputs):
            if spec.name == name:
                return index
        return None

    @property
    def fusable(self) -> bool:
        """Light enough to share one Ray task with its neighbours: no placement wishes."""
        return self.resources is None and self.model_kind is None


@dataclass(slots=True)
class NodeResult:
    """One execution's outputs, by output position, and the optional UI dict it showed."""

    values: tuple[Any, ...]
    ui: dict[str, Any] | None = None
    files: tuple[str, ...] = ()  # file-store ids the execution saved


Execute = Callable[[dict[str, Any], "NodeContext"], NodeResult]
IsChanged = Callable[[dict[str, Any]], Any]
# Returns problems as (input name or None, message); empty when the inputs are fine.
ValidateInputs = Callable[[dict[str, Any]], list[tuple[str | None, str]]]


@dataclass(slots=True)
class NodeDef:
    spec: NodeSpec
    execute: Execute
    is_changed: IsChanged | None = None
    validate_inputs: ValidateInputs | None = None
