"""Our graphs and ComfyUI's editor workflows, both ways.

- ``graph_to_workflow(graph, registry)``: a graph as the UI-format workflow ComfyUI's
  frontend loads (``engine/workflow_export.py``);
- ``workflow_to_graph(workflow, registry, name)``: a saved workflow as our graph, with a
  ``ui:`` block that brings the same workflow back (``engine/workflow_import.py``);
- ``workflow_to_prompt(workflow, registry)``: the API prompt the frontend's Run button
  would send (``engine/workflow_prompt.py``);
- ``dump_graph(graph)``: YAML text laid out like the shipped graphs;
- ``export_file(path, format, registry)``: any of the three file kinds (our YAML/JSON
  graph, a UI workflow, an API prompt) as any of them: ``homepilot graph export``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from engine.graph import Graph
from engine.loader import graph_from_comfy, graph_from_data, is_comfy_prompt, read_data
from engine.registry import Registry
from engine.workflow_export import graph_to_workflow
from engine.workflow_import import workflow_to_graph
from engine.workflow_model import is_ui_workflow
from engine.workflow_prompt import workflow_to_prompt
from engine.workflow_yaml import dump_graph

__all__ = ["ExportFormat", "FileKind", "detect", "dump_graph", "export_file",
           "graph_to_workflow", "read_file", "workflow_to_graph", "workflow_to_prompt"]

ExportFormat = Literal["comfy-ui", "comfy-api", "yaml"]
FileKind = Literal["graph", "comfy-ui", "comfy-api"]


def detect(data: Any) -> FileKind:
    """Which of the three a parsed file is."""
    if is_ui_workflow(data):
        return "comfy-ui"
    if isinstance(data, dict) and is_comfy_prompt(data):
        return "comfy-api"
    return "graph"


def read_file(path: str | Path) -> tuple[FileKind, Any]:
    """A graph file, UI workflow or API prompt, parsed, with its kind."""
    data = read_data(path)
    return detect(data), data


def _as_graph(kind: FileKind, data: Any, name: str, registry: Registry) -> Graph:
    if kind == "comfy-ui":
        # The name the workflow was made from wins over its file's name.
        own = ((data.get("extra") or {}).get("homepilot") or {}).get("name")
        return workflow_to_graph(data, registry, own if isinstance(own, str) and own else name)
    if kind == "comfy-api":
        return graph_from_comfy(data, name=name)
    return graph_from_data(data, default_name=name)


def export_file(path: str | Path, fmt: ExportFormat, registry: Registry) -> str:
    """The file at ``path`` as text in ``fmt``: a UI workflow (JSON), an API prompt
    (JSON) or our YAML."""
    kind, data = read_file(path)
    name = Path(path).stem
    if fmt == "comfy-ui":
        result: Any = data if kind == "comfy-ui" else \
            graph_to_workflow(_as_graph(kind, data, name, registry), registry)
    elif fmt == "comfy-api":
        if kind == "comfy-api":
            result = data
        else:
            workflow = data if kind == "comfy-ui" else \
                graph_to_workflow(_as_graph(kind, data, name, registry), registry)
            result = workflow_to_prompt(workflow, registry)
    else:
        return dump_graph(_as_graph(kind, data, name, registry))
    return json.dumps(result, indent=2, ensure_ascii=False) + "\n"
