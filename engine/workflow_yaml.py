"""Writing a graph as YAML laid out like the shipped files: ``dump_graph``.

version, name, description, inputs (one flow mapping a line, aligned), nodes (type,
title, inputs), outputs, then the ``ui:`` block last, one editor node a line.
References are double-quoted ("${node.output}") as in the shipped graphs. Loading the
text gives back an equal graph.
"""

from __future__ import annotations

from typing import Any

import yaml

from engine.graph import Graph, GraphInput

_WIDE = 10**6  # flow mappings stay on one line
_LINE = 92     # node inputs fit on one line up to this width, as in the shipped files


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if "${" in value and "\n" not in value else None
    if "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _flow(value: Any) -> str:
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=_WIDE,
                     sort_keys=False, allow_unicode=True)
    return text.removesuffix("\n...\n").rstrip("\n")


def _key(name: str) -> str:
    return _flow(name)


def _block(value: Any, indent: int) -> list[str]:
    """A value under a key: on the same line when it fits in one flow line."""
    text = _flow(value)
    if "\n" not in text:
        return [" " + text]
    body = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, width=88,
                     sort_keys=False, allow_unicode=True).rstrip("\n")
    pad = " " * indent
    return [""] + [pad + line for line in body.splitlines()]


def _input_fields(spec: GraphInput) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": spec.type}
    if spec.default is not None:
        fields["default"] = spec.default
    if spec.required is not None:
        fields["required"] = spec.required
    for key in ("min", "max"):
        value = getattr(spec, key)
        if value is not None:
            fields[key] = int(value) if float(value).is_integer() else value
    if spec.choices is not None:
        fields["choices"] = spec.choices
    if spec.description:
        fields["description"] = spec.description
    return fields


def _description(text: str) -> list[str]:
    if "\n" not in text.rstrip("\n") and len(text) <= 80:
        return [f"description:{_block(text, 2)[0]}"]
    body = yaml.dump(text, Dumper=yaml.SafeDumper, default_style=">", width=88,
                     allow_unicode=True).rstrip("\n")
    first, *rest = body.splitlines()
    return [f"description: {first}", *rest]


def dump_graph(graph: Graph) -> str:
    """The graph as YAML text, readable and loadable (``engine.loader.load_graph``)."""
    lines = [f"version: {graph.version}", f"name:{_block(graph.name, 2)[0]}"]
    if graph.description:
        lines += _description(graph.description)
    if graph.inputs:
        lines.append("inputs:")
        width = max(len(_key(n)) for n in graph.inputs) + 1
        for name, spec in graph.inputs.items():
            lines.append(f"  {(_key(name) + ':').ljust(width)} {_flow(_input_fields(spec))}")
    lines.append("nodes:" if graph.nodes else "nodes: {}")
    for node_id, node in graph.nodes.items():
        lines.append(f"  {_key(node_id)}:")
        lines.append(f"    type:{_block(node.type, 6)[0]}")
        if node.title is not None:
            lines.append(f"    title:{_block(node.title, 6)[0]}")
        if node.inputs:
            flow = f"    inputs: {_flow(node.inputs)}"
            if len(flow) <= _LINE and "\n" not in flow:
                lines.append(flow)
                continue
            lines.append("    inputs:")
            for name, value in node.inputs.items():
                lines.append(f"      {_key(name)}:" + "\n".join(_block(value, 8)))
    lines.append("outputs:" if graph.outputs else "outputs: {}")
    for name, value in graph.outputs.items():
        lines.append(f"  {_key(name)}: {_flow(value)}")
    if graph.format != "homepilot":
        lines.append(f"format: {graph.format}")
    if graph.ui:
        lines += _ui(graph.ui)
    return "\n".join(lines) + "\n"


def _ui(ui: dict[str, Any]) -> list[str]:
    lines = ["ui:"]
    for key, value in ui.items():
        if key == "nodes" and isinstance(value, dict):
            lines.append("  nodes:")
            lines += [f"    {_key(k)}: {_flow(v)}" for k, v in value.items()]
        elif key == "notes" and isinstance(value, list):
            lines.append("  notes:")
            lines += [f"    - {_flow(v)}" for v in value]
        else:
            lines.append(f"  {_key(key)}:" + "\n".join(_block(value, 4)))
    return lines
