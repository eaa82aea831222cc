"""A compiled graph: what the executors run. Built by ``engine.compiler.compile_graph``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.reference import Template
from engine.spec import NodeDef

# A link to output ``index`` of node ``source``.
Link = tuple[str, int]


@dataclass(slots=True)
class TemplateInput:
    """A template string whose references to nodes are filled at run time."""

    template: Template
    links: dict[Any, Link]  # Ref -> link


@dataclass(slots=True)
class PlanNode:
    id: str
    definition: NodeDef
    consts: dict[str, Any]
    links: dict[str, Link]
    templates: dict[str, TemplateInput]
    deps: tuple[str, ...]          # distinct upstream node ids
    mapped: bool = False           # runs once per item of its list-valued inputs
    list_inputs: frozenset[str] = frozenset()
    signature: str = ""
    volatile: bool = False         # never served from, nor stored in, the cache

    @property
    def type(self) -> str:
        return self.definition.spec.type


@dataclass(slots=True)
class Plan:
    graph_name: str
    nodes: dict[str, PlanNode]                 # only the nodes the targets need, topo order
    outputs: dict[str, Link]                   # graph output name -> link
    targets: list[str]                         # nodes whose results the run must produce
    output_nodes: list[str]                    # nodes whose ui dict is reported
    dependents: dict[str, list[str]] = field(default_factory=dict)
