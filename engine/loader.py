"""Reading graphs from YAML/JSON files and bodies, in our format or ComfyUI's API format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.errors import GraphLoadError
from engine.graph import Graph, NodeInstance


def load_graph(path: str | Path) -> Graph:
    """Load a graph file (``.yaml``, ``.yml`` or ``.json``); the name defaults to the stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphLoadError(f"cannot read graph file {path}: {exc.strerror or exc}") from exc
    data = _parse_text(text, path.suffix.lower(), str(path))
    return graph_from_data(data, default_name=path.stem)


def _parse_text(text: str, suffix: str, where: str) -> Any:
    try:
        if suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise GraphLoadError(f"{where} is not valid {'JSON' if suffix == '.json' else 'YAML'}: "
                             f"{exc}") from exc


def graph_from_data(data: Any, default_name: str = "graph") -> Graph:
    """Build a graph from parsed data in either format."""
    if not isinstance(data, dict):
        raise GraphLoadError("a graph must be a mapping (our format) or a ComfyUI API-format "
                             f"prompt object, not {type(data).__name__}")
    if is_comfy_prompt(data):
        return graph_from_comfy(data, name=default_name)
    data = dict(data)
    data.setdefault("name", default_name)
    try:
        return Graph.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                             for err in exc.errors())
        raise GraphLoadError(f"graph does not follow the graph format: {problems}") from exc


def is_comfy_prompt(data: dict[str, Any]) -> bool:
    """ComfyUI API format: every value is a node object with a ``class_type``."""
    if not data or "nodes" in data:
        return False
    return all(isinstance(v, dict) and "class_type" in v for v in data.values())


def graph_from_comfy(prompt: dict[str, Any], name: str = "prompt") -> Graph:
    """Translate ``{"3": {"class_type": ..., "inputs": {"a": ["4", 0]}}}`` to a graph.

    Links ``[node_id, index]`` become ``${node_id.index}``: outputs may be referenced by
    position, which is how ComfyUI names them.
    """
    nodes: dict[str, NodeInstance] = {}
    for node_id, body in prompt.items():
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise GraphLoadError(f"node '{node_id}': 'inputs' must be an object")
        converted = {key: _comfy_value(value) for key, value in inputs.items()}
        meta = body.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        class_type = body.get("class_type")
        if not isinstance(class_type, str):
            raise GraphLoadError(f"node '{node_id}': 'class_type' must be a string")
        nodes[str(node_id)] = NodeInstance(type=class_type, inputs=converted, title=title)
    return Graph(name=name, nodes=nodes, format="comfy")


def _comfy_value(value: Any) -> Any:
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool)):
        return f"${{{value[0]}.{value[1]}}}"
    if isinstance(value, str) and "${" in value:
        # A literal "${" in a ComfyUI widget value is text, not one of our references.
        return value.replace("${", "$${")
    return value
