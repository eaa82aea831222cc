"""A graph file's ``ui:`` block, and the naming rules both conversions share.

The ``ui:`` block keeps what the editor needs to show a graph exactly as it was saved
and that a graph does not otherwise hold. It is keyed by what each editor node stands for:

- a node id (``generate``) for the graph's nodes;
- ``inputs.<name>`` / ``outputs.<name>`` for the graph.Input / graph.Output nodes;
- ``<node>.<input>`` for the graph.Template / graph.Constant node feeding that input
  (a template string or a constant given to an input that only takes links).

The engine ignores it. Anything missing is recomputed (ids in order, a fresh layout).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.reference import GRAPH_INPUTS

# Properties our converters put on editor nodes.
SR_NAME = "Node name for S&R"   # the frontend's own: the node's type, for search & replace
NODE_ID = "node_id"             # the graph file's node id when the title would not give it
HAS_DEFAULT = "has_default"     # graph.Input: False when an empty value means "no default"
INPUT_META = ("description", "min", "max", "choices", "required")


class UiNodeEntry(BaseModel):
    """One editor node's look: its id in the editor and what the user arranged."""

    model_config = ConfigDict(extra="forbid")

    id: int | str
    pos: list[int | float] | None = None      # ints stay ints: the YAML stays short
    size: list[int | float] | None = None
    title: str | None = None            # graph.Input/Output/Template/Constant nodes only
    flags: dict[str, Any] | None = None
    mode: int | None = None
    color: str | None = None
    bgcolor: str | None = None
    links: dict[str, int] | None = None       # input name -> link id
    controls: dict[str, str] | None = None    # seed widget -> control_after_generate
    properties: dict[str, Any] | None = None  # properties other than ours


class UiBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: dict[str, UiNodeEntry] = Field(default_factory=dict)
    ds: dict[str, Any] | None = None
    groups: list[dict[str, Any]] | None = None
    config: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None       # workflow.extra besides ds and ours
    last_node_id: int | str | None = None
    last_link_id: int | None = None
    notes: list[dict[str, Any]] | None = None  # Note / MarkdownNote nodes, as saved
    workflow_id: str | None = None            # the editor's workflow uuid
    revision: int | None = None


def input_key(name: str) -> str:
    return f"{GRAPH_INPUTS}.{name}"


def output_key(name: str) -> str:
    return f"outputs.{name}"


def feeder_key(node_id: str, input_name: str) -> str:
    return f"{node_id}.{input_name}"


_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def slug(text: str) -> str:
    """A title as a node id: lower case, runs of other characters as one '_'."""
    return _UNSAFE.sub("_", text).strip("_").lower() or "node"


def derive_ids(nodes: Iterable[tuple[Any, str, str | None]]) -> dict[Any, str]:
    """Node ids for editor nodes given as (key, title, node_id property).

    A ``node_id`` property wins (the first one, if two nodes claim the same); otherwise
    the title's slug, made unique with ``_2``, ``_3``... in the order given. ``inputs``
    is never an id: ``${inputs.x}`` names a graph input.
    """
    items = list(nodes)
    taken: set[str] = {GRAPH_INPUTS}
    chosen: dict[Any, str] = {}
    for key, _, claimed in items:
        if claimed and claimed not in taken and valid_id(claimed):
            chosen[key] = claimed
            taken.add(claimed)
    for key, title, _ in items:
        if key in chosen:
            continue
        base = slug(title)
        candidate, number = base, 2
        while candidate in taken:
            candidate, number = f"{base}_{number}", number + 1
        chosen[key] = candidate
        taken.add(candidate)
    return chosen


def valid_id(node_id: str) -> bool:
    """Whether references can name the node (``${id.output}``)."""
    return node_id != GRAPH_INPUTS and re.fullmatch(r"[A-Za-z0-9_\-:]+", node_id) is not None
