"""Reading graphs from YAML/JSON files and bodies, in our format or ComfyUI's API format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.errors import GraphLoadError, shown
from engine.graph import Graph, GraphInput, NodeInstance
from engine.reference import escape, linkable
from engine.types import ANY
from engine.workflow_model import is_ui_workflow


def load_graph(path: str | Path) -> Graph:
    """Load a graph file (``.yaml``, ``.yml`` or ``.json``); the name defaults to the stem."""
    path = Path(path)
    return graph_from_data(read_data(path), default_name=path.stem)


def read_data(path: str | Path) -> Any:
    """A graph file's content parsed (JSON for ``.json``, YAML otherwise), not yet a graph:
    our format, a ComfyUI API prompt or an editor workflow."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphLoadError(f"cannot read graph file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise GraphLoadError(f"graph file {path} is not UTF-8 text: {exc.reason} at byte "
                             f"{exc.start}") from exc
    return _parse_text(text, path.suffix.lower(), str(path))


def _parse_text(text: str, suffix: str, where: str) -> Any:
    kind = "JSON" if suffix == ".json" else "YAML"
    try:
        if suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except RecursionError as exc:  # both parsers recurse once per nesting level
        raise GraphLoadError(f"{where} nests lists or mappings too deeply to read") from exc
    except (ValueError, yaml.YAMLError) as exc:
        # ValueError: a JSON syntax error, or an integer with more digits than Python
        # reads (sys.get_int_max_str_digits()), which either parser may meet.
        raise GraphLoadError(f"{where} is not valid {kind}: {exc}") from exc


def graph_from_data(data: Any, default_name: str = "graph") -> Graph:
    """Build a graph from parsed data in either format."""
    if not isinstance(data, dict):
        raise GraphLoadError("a graph must be a mapping (our format) or a ComfyUI API-format "
                             f"prompt object, not {type(data).__name__}")
    if is_comfy_prompt(data):
        return graph_from_comfy(data, name=default_name, placeholders=True)
    if is_ui_workflow(data):
        raise GraphLoadError("this is a workflow as ComfyUI's editor saves it; convert it "
                             "first: homepilot graph export FILE --format yaml")
    data = dict(data)
    data.setdefault("name", default_name)
    try:
        return Graph.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                             for err in exc.errors())
        raise GraphLoadError(f"graph does not follow the graph format: {problems}") from exc


def is_comfy_prompt(data: dict[str, Any]) -> bool:
    """ComfyUI API format: every value is a node object with a ``class_type`` (beside an
    optional top-level ``_meta`` object, as HomePilot's workflow files carry)."""
    nodes = {k: v for k, v in data.items() if not _is_meta(k, v)}
    if not nodes or "nodes" in data:
        return False
    return all(isinstance(v, dict) and "class_type" in v for v in nodes.values())


def _is_meta(key: Any, value: Any) -> bool:
    return key == "_meta" and isinstance(value, dict) and "class_type" not in value


# HomePilot's workflow files mark what a caller fills in as ``{{name}}``.
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _placeholders(value: Any, found: dict[str, None]) -> Any:
    """``"{{seed}}"`` becomes the graph input ``${inputs.seed}`` (so it takes a typed
    value, as HomePilot's orchestrator substitutes it); ``"photo of {{prompt}}"`` a
    template of it. Every name seen is noted in ``found``."""
    if not isinstance(value, str) or "{{" not in value:
        return value

    def named(match: re.Match[str]) -> str:
        found[match.group(1)] = None
        return f"${{inputs.{match.group(1)}}}"

    return _PLACEHOLDER.sub(named, value)


def graph_from_comfy(prompt: Any, name: str = "prompt", placeholders: bool = False) -> Graph:
    """Translate ``{"3": {"class_type": ..., "inputs": {"a": ["4", 0]}}}`` to a graph.

    Links ``[node_id, index]`` become ``${node_id.index}``: outputs may be referenced by
    position, which is how ComfyUI names them. With ``placeholders`` (workflow files, not
    prompts ComfyUI clients send), ``{{name}}`` in a value becomes the graph input ``name``.
    """
    if not isinstance(prompt, dict):
        raise GraphLoadError("a ComfyUI prompt must be an object of nodes by id, not "
                             f"{type(prompt).__name__}")
    about = prompt.get("_meta") if _is_meta("_meta", prompt.get("_meta")) else {}
    named: dict[str, None] = {}
    nodes: dict[str, NodeInstance] = {}
    for key, body in prompt.items():
        if _is_meta(key, body):
            continue
        # Ids are text in ComfyUI's JSON; YAML or Python callers may write numbers.
        node_id = _as_text(key, "node id")
        if node_id in nodes:  # 1 and "1", say
            raise GraphLoadError(f"node id {shown(key)} is the same as node '{node_id}': "
                                 "node ids must be unique")
        if not isinstance(body, dict):
            raise GraphLoadError(f"node '{node_id}' must be an object with 'class_type' and "
                                 f"'inputs', not {type(body).__name__}")
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise GraphLoadError(f"node '{node_id}': 'inputs' must be an object")
        converted = {}
        for input_name, value in inputs.items():
            if not isinstance(input_name, str):
                raise GraphLoadError(f"node '{node_id}': input names must be text, not "
                                     f"{shown(input_name)}")
            converted[input_name] = _comfy_value(node_id, input_name, value)
            if placeholders:
                converted[input_name] = _placeholders(converted[input_name], named)
        meta = body.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        class_type = body.get("class_type")
        if not isinstance(class_type, str):
            raise GraphLoadError(f"node '{node_id}': 'class_type' must be a string")
        # The title is only shown, so one that is not text is dropped rather than refused.
        nodes[node_id] = NodeInstance(type=class_type, inputs=converted,
                                      title=title if isinstance(title, str) else None)
    # HomePilot's orchestrator fills every placeholder; a file may offer defaults for a
    # person running it by hand in ``_meta.defaults`` (our addition; others ignore it).
    defaults = about.get("defaults") if isinstance(about.get("defaults"), dict) else {}
    inputs = {key: GraphInput(type=ANY, default=defaults.get(key),
                              description=f"fills {{{{{key}}}}} in the workflow")
              for key in named}
    description = about.get("description") or about.get("title") or ""
    return Graph(name=name, nodes=nodes, outputs=_named_outputs(nodes), format="comfy",
                 inputs=inputs, description=description if isinstance(description, str)
                 else "")


# The editor's node for one named graph output (nodes/graph.py).
GRAPH_OUTPUT = "graph.Output"


def _named_outputs(nodes: dict[str, NodeInstance]) -> dict[str, str]:
    """graph.Output nodes name the prompt's outputs, so a run of a graph made in the
    editor reports them as the graph file would (the first node wins a name)."""
    outputs: dict[str, str] = {}
    for node_id, node in nodes.items():
        name = node.inputs.get("name")
        if node.type == GRAPH_OUTPUT and isinstance(name, str) and name \
                and name not in outputs and linkable(node_id):
            outputs[name] = f"${{{node_id}.value}}"
    return outputs


def _as_text(value: Any, what: str) -> str:
    try:
        return str(value)
    except ValueError as exc:  # an int with more digits than Python prints
        raise GraphLoadError(f"{what} {shown(value)} has too many digits") from exc


def _comfy_value(node_id: str, input_name: str, value: Any) -> Any:
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool)):
        where = f"node '{node_id}' input '{input_name}':"
        source = _as_text(value[0], f"{where} linked node id")
        if not linkable(source):
            # Written as "${3.1.0}" it would silently become text, not a link.
            raise GraphLoadError(f"{where} cannot link to node {shown(source)}: only ids of "
                                 "letters, digits, '_', '-' and ':' can be linked")
        return f"${{{source}.{_as_text(value[1], f'{where} output index')}}}"
    if isinstance(value, dict) and isinstance(value.get("__value__"), list):
        # The editor wraps list widget values so they do not read as links; ComfyUI's
        # backend unwraps them.
        return value["__value__"]
    if isinstance(value, str) and "${" in value:
        # A literal "${" in a ComfyUI widget value is text, not one of our references.
        return escape(value)
    return value
