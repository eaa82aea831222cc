"""Validation and compilation of a graph into a ``Plan``.

Every problem is collected, each with node id and input name, and reported together.
Nothing here recurses: networkx's topological sort, cycle search and ancestor walks
are iterative, so a 100,000-node chain compiles as well as a 10-node one.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import repeat
from typing import Any

import networkx as nx

from engine import types as t
from engine.errors import GraphValidationError, ValidationIssue, shown
from engine.graph import Graph
from engine.plan import Link, Plan, PlanNode, TemplateInput
from engine.reference import Ref, Template, parse, render, unescape
from engine.registry import Registry
from engine.spec import InputSpec, NodeDef


class _Collector:
    def __init__(self) -> None:
        self.issues: list[ValidationIssue] = []

    def add(self, kind: str, message: str, node_id: str | None = None,
            node_type: str | None = None, input: str | None = None,  # noqa: A002
            details: str = "") -> None:
        self.issues.append(ValidationIssue(kind=kind, message=message, node_id=node_id,
                                           node_type=node_type, input=input, details=details))


def compile_graph(graph: Graph, registry: Registry, inputs: dict[str, Any] | None = None,
                  outputs: list[str] | None = None, *, require_inputs: bool = True) -> Plan:
    """Validate ``graph`` with ``inputs`` and return the plan for the requested outputs.

    Raises ``GraphValidationError`` with every problem found. ``require_inputs=False``
    checks a graph file on its own, before anyone supplies its required inputs.
    """
    found = _Collector()
    if inputs is not None and not isinstance(inputs, dict):
        raise GraphValidationError([ValidationIssue(
            kind="invalid_graph_inputs", message="graph inputs must be an object of values by "
            f"input name, not {type(inputs).__name__}")])
    values = _graph_inputs(graph, inputs or {}, found, require_inputs)
    compiled: dict[str, PlanNode] = {}
    raw_links: dict[str, dict[str, Ref]] = {}
    for node_id, instance in graph.nodes.items():
        definition = registry.get(instance.type)
        if definition is None:
            found.add("unknown_node_type", f"node type '{instance.type}' does not exist "
                      "(see `homepilot nodes` for the installed types)", node_id, instance.type)
            continue
        compiled[node_id], raw_links[node_id] = _compile_node(
            node_id, instance.inputs, definition, graph, values, found)
    _check_links(graph, compiled, raw_links, found)
    order = _order(compiled, found)
    graph_outputs = _graph_outputs(graph, compiled, found)
    if found.issues:
        raise GraphValidationError(found.issues)
    return _plan(graph, compiled, order, graph_outputs, outputs)


def validate_graph(graph: Graph, registry: Registry,
                   inputs: dict[str, Any] | None = None) -> list[ValidationIssue]:
    """All problems of a graph (empty when it is valid); never raises for graph problems.

    Without inputs, required graph inputs are not reported missing: a graph file is valid
    before it is given them.
    """
    try:
        compile_graph(graph, registry, inputs, _all_outputs(graph),
                      require_inputs=bool(inputs))
    except GraphValidationError as exc:
        return exc.issues
    return []


def _all_outputs(graph: Graph) -> list[str]:
    return list(graph.outputs)


# -- graph inputs -------------------------------------------------------------------------

def _graph_inputs(graph: Graph, given: dict[str, Any], found: _Collector,
                  require: bool = True) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in given:
        if name not in graph.inputs:
            known = ", ".join(sorted(graph.inputs)) or "none"
            # A Python caller may pass a non-text key; the issue still names it, as text.
            label = name if isinstance(name, str) else shown(name)
            found.add("unknown_graph_input", f"graph '{graph.name}' has no input '{label}' "
                      f"(its inputs: {known})", input=label)
    for name, spec in graph.inputs.items():
        # An unusable value is reported and left out: templates and the cache signature
        # would otherwise crash on it before the issues are raised.
        if name in given and (reason := _unusable(given[name])):
            found.add("invalid_input_type", f"graph input '{name}' {reason}", input=name)
        elif name in given:
            value = coerce(spec.type, given[name])
            problem = _constant_problem(spec.type, value, spec.min, spec.max, spec.choices)
            if problem:
                found.add(problem[0], problem[1], input=name)
            values[name] = value
        elif spec.default is not None and (reason := _unusable(spec.default)):
            found.add("invalid_input_type", f"the default of graph input '{name}' {reason}",
                      input=name)
        elif spec.default is not None:
            values[name] = spec.default
        elif spec.is_required and require:
            found.add("required_input_missing", f"graph input '{name}' is required", input=name)
    return values


def coerce(port_type: str, value: Any) -> Any:
    """Values given on a command line or in a query string arrive as text."""
    if not isinstance(value, str):
        if port_type == t.FLOAT and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if port_type == t.INT and value.strip().lstrip("-").isdigit():
            return int(value)
        if port_type == t.FLOAT:
            return float(value)
    except ValueError:
        return value
    if port_type == t.BOOLEAN and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    return value


# Far deeper than any real value, and far inside the ~1,000 levels that repr() (the cache
# signature) and JSON encoding recurse through wherever the value travels next.
MAX_VALUE_DEPTH = 100
_CONTAINERS = (dict, list, tuple, set, frozenset)


def _unusable(value: Any) -> str | None:
    """Why a value cannot go through a run, or None: it must be signed for the cache
    (``repr``), rendered into templates (``str``) and sent back as JSON.

    JSON and YAML text cannot hold such values (the loader refuses them); Python callers
    can. ``repr`` finds too-long integers at C speed; the depth walk visits containers only.
    """
    try:
        repr(value)
    except ValueError:  # an int with more digits than sys.get_int_max_str_digits()
        return "holds an integer with too many digits to print"
    except RecursionError:
        return f"is nested more than {MAX_VALUE_DEPTH} levels deep"
    stack = [(value, 1)] if isinstance(value, _CONTAINERS) else []
    while stack:  # iterative, so that a deep value cannot exhaust the stack here
        item, depth = stack.pop()
        if depth > MAX_VALUE_DEPTH:
            return f"is nested more than {MAX_VALUE_DEPTH} levels deep"
        parts = item.values() if isinstance(item, dict) else item
        # map() over a builtin runs in C: a long list of plain numbers costs next to nothing.
        if any(map(isinstance, parts, repeat(_CONTAINERS))):
            stack.extend((part, depth + 1) for part in parts if isinstance(part, _CONTAINERS))
    return None


CHOICES_LISTED = 50  # the most choices an error message lists


def _constant_problem(port_type: str, value: Any, low: float | None, high: float | None,
                      choices: list[Any] | None) -> tuple[str, str] | None:
    reason = _unusable(value)
    if reason:
        return "invalid_input_type", f"this value {reason}"
    if choices is not None:
        if value not in choices:
            # The whole list when it is of a readable length (ComfyUI's samplers: 24)
            listed = ", ".join(shown(c) for c in choices[:CHOICES_LISTED])
            more = len(choices) - CHOICES_LISTED
            if more > 0:
                listed += f" (and {more} more)"
            return "value_not_in_list", f"{shown(value)} is not one of: {listed}"
        return None
    if not t.constant_fits(port_type, value):
        return "invalid_input_type", f"{shown(value)} is not a valid {port_type}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            return ("value_smaller_than_min",
                    f"{shown(value)} is smaller than the minimum {low:g}")
        if high is not None and value > high:
            return ("value_bigger_than_max",
                    f"{shown(value)} is bigger than the maximum {high:g}")
        if isinstance(value, float) and math.isnan(value):
            return "invalid_input_type", "NaN is not a valid number"
    return None


# -- nodes ----------------------------------------------------------------------------

def _compile_node(node_id: str, given: dict[str, Any], definition: NodeDef, graph: Graph,
                  values: dict[str, Any], found: _Collector) -> tuple[PlanNode, dict[str, Ref]]:
    """A node with constants and templates compiled; its links come back unresolved."""
    spec = definition.spec
    issues_before = len(found.issues)
    consts: dict[str, Any] = {}
    templates: dict[str, TemplateInput] = {}
    raw_links: dict[str, Ref] = {}
    for name, value in given.items():
        input_spec = spec.input(name)
        if input_spec is None:
            if graph.format == "homepilot":
                known = ", ".join(i.name for i in spec.inputs) or "none"
                found.add("unknown_input", f"{spec.type} has no input '{name}' (its inputs: "
                          f"{known})", node_id, spec.type, name)
            continue
        reference = parse(value)
        if isinstance(reference, Ref):
            if reference.is_graph_input:
                if reference.name in graph.inputs:
                    if reference.name in values:
                        consts[name] = coerce(input_spec.type, values[reference.name])
                        _check_constant(node_id, spec.type, input_spec, consts[name], found)
                else:
                    found.add("unknown_graph_input", f"{reference} refers to a graph input "
                              "that is not declared", node_id, spec.type, name)
            else:
                raw_links[name] = reference
        elif isinstance(reference, Template):
            _compile_template(node_id, spec.type, name, reference, graph, values, consts,
                              templates, found)
        else:
            value = unescape(value) if isinstance(value, str) else value
            if input_spec.link_only:
                found.add("invalid_input_type", f"input '{name}' must be linked to another "
                          "node's output, not given a constant", node_id, spec.type, name)
            consts[name] = value
            _check_constant(node_id, spec.type, input_spec, value, found)
    for input_spec in spec.inputs:
        name = input_spec.name
        if name in consts or name in raw_links or name in templates or name in given:
            continue
        if input_spec.kind == "required" and input_spec.default is not None:
            consts[name] = input_spec.default
        elif input_spec.kind == "required":
            found.add("required_input_missing", f"required input '{name}' is missing",
                      node_id, spec.type, name)
    if definition.validate_inputs is not None and len(found.issues) == issues_before:
        _custom_validation(node_id, definition, consts, found)
    node = PlanNode(id=node_id, definition=definition, consts=consts, links={},
                    templates=templates, deps=())
    return node, raw_links


def _compile_template(node_id: str, node_type: str, name: str, template: Template, graph: Graph,
                      values: dict[str, Any], consts: dict[str, Any],
                      templates: dict[str, TemplateInput], found: _Collector) -> None:
    node_refs = [ref for ref in template.refs if not ref.is_graph_input]
    for ref in template.refs:
        if ref.is_graph_input and ref.name not in graph.inputs:
            found.add("unknown_graph_input", f"{ref} refers to a graph input that is not "
                      "declared", node_id, node_type, name)
            return
    if not node_refs:
        consts[name] = render(template, {ref: values.get(ref.name, "") for ref in template.refs})
        return
    # Graph inputs are filled now; node references at run time.
    parts = tuple(values.get(p.name, "") if isinstance(p, Ref) and p.is_graph_input else p
                  for p in template.parts)
    parts = tuple(str(p) if not isinstance(p, (str, Ref)) else p for p in parts)
    templates[name] = TemplateInput(Template(parts), {ref: (ref.source, -1) for ref in node_refs})


def _check_constant(node_id: str, node_type: str, spec: InputSpec, value: Any,
                    found: _Collector) -> None:
    problem = _constant_problem(spec.type, value, spec.min, spec.max, spec.choices)
    if problem:
        found.add(problem[0], problem[1], node_id, node_type, spec.name)


def _custom_validation(node_id: str, definition: NodeDef, consts: dict[str, Any],
                       found: _Collector) -> None:
    try:
        problems = definition.validate_inputs(consts)  # type: ignore[misc]
    except Exception as exc:  # a pack's validator is third-party code
        problems = [(None, f"validation raised {type(exc).__name__}: {exc}")]
    for input_name, message in problems:
        found.add("custom_validation_failed", message, node_id, definition.spec.type,
                  input_name, details=f"{input_name} - {message}" if input_name else message)


def _resolve(node_id: str, node_type: str, input_name: str, ref: Ref, target_type: str | None,
             compiled: dict[str, PlanNode], graph: Graph, found: _Collector) -> Link | None:
    source = compiled.get(ref.source)
    if source is None:
        if ref.source in graph.nodes:
            return None  # the source itself is broken (unknown type); already reported
        found.add("missing_node", f"{ref} links to node '{ref.source}', which is not in the "
                  "graph", node_id, node_type, input_name)
        return None
    index = source.definition.spec.output_index(ref.name)
    if index is None:
        names = ", ".join(o.name for o in source.definition.spec.outputs) or "none"
        found.add("missing_output", f"{ref}: node '{ref.source}' ({source.type}) has no output "
                  f"'{ref.name}' (its outputs: {names})", node_id, node_type, input_name)
        return None
    output_type = source.definition.spec.outputs[index].type
    if target_type is not None and not t.compatible(output_type, target_type):
        found.add("type_mismatch", f"{ref} is {output_type} but input '{input_name}' takes "
                  f"{target_type}", node_id, node_type, input_name)
        return None
    return ref.source, index


def _check_links(graph: Graph, compiled: dict[str, PlanNode],
                 raw_links: dict[str, dict[str, Ref]], found: _Collector) -> None:
    for node_id, node in compiled.items():
        spec = node.definition.spec
        links: dict[str, Link] = {}
        for name, ref in raw_links[node_id].items():
            input_spec = spec.input(name)
            link = _resolve(node_id, spec.type, name, ref, input_spec.type if input_spec else None,
                            compiled, graph, found)
            if link is not None:
                links[name] = link
        node.links = links
        for name, template in node.templates.items():
            resolved = {}
            for ref in template.links:
                link = _resolve(node_id, spec.type, name, ref, None, compiled, graph, found)
                if link is not None:
                    resolved[ref] = link
            template.links = resolved
        deps = {source for source, _ in links.values()}
        for template in node.templates.values():
            deps.update(source for source, _ in template.links.values())
        node.deps = tuple(sorted(deps))


def _order(compiled: dict[str, PlanNode], found: _Collector) -> list[str]:
    """Topological order (Kahn's algorithm: a queue, no recursion, few allocations).

    Only when nodes are left over, networkx finds the cycles among them: every strongly
    connected component is reported with one cycle through it.
    """
    indegree = {node_id: len(node.deps) for node_id, node in compiled.items()}
    dependents: dict[str, list[str]] = {node_id: [] for node_id in compiled}
    for node_id, node in compiled.items():
        for dep in node.deps:
            dependents[dep].append(node_id)
    ready = deque(node_id for node_id, count in indegree.items() if count == 0)
    order: list[str] = []
    while ready:
        node_id = ready.popleft()
        order.append(node_id)
        for follower in dependents[node_id]:
            indegree[follower] -= 1
            if indegree[follower] == 0:
                ready.append(follower)
    if len(order) < len(compiled):
        _report_cycles(compiled, set(compiled) - set(order), found)
        return []
    return order


def _report_cycles(compiled: dict[str, PlanNode], left: set[str], found: _Collector) -> None:
    dag = nx.DiGraph()
    dag.add_edges_from((dep, node_id) for node_id in left for dep in compiled[node_id].deps
                       if dep in left)
    for component in nx.strongly_connected_components(dag):
        if len(component) == 1 and not dag.has_edge(*(next(iter(component)),) * 2):
            continue  # downstream of a cycle, not on one
        cycle = [edge[0] for edge in nx.find_cycle(dag.subgraph(component))]
        path = " -> ".join(cycle + cycle[:1])
        for node_id in sorted(component):
            found.add("cycle", f"node is part of a cycle: {path}", node_id,
                      compiled[node_id].type, details=path)


def _graph_outputs(graph: Graph, compiled: dict[str, PlanNode],
                   found: _Collector) -> dict[str, Link]:
    outputs: dict[str, Link] = {}
    for name, value in graph.outputs.items():
        ref = parse(value)
        if not isinstance(ref, Ref) or ref.is_graph_input:
            found.add("invalid_output", f"graph output '{name}' must be one ${{node.output}} "
                      f"reference, not {value!r}", input=name)
            continue
        link = _resolve(f"outputs.{name}", "graph output", name, ref, None, compiled, graph, found)
        if link is not None:
            outputs[name] = link
    return outputs


# -- the plan -----------------------------------------------------------------------

def _plan(graph: Graph, compiled: dict[str, PlanNode], order: list[str],
          graph_outputs: dict[str, Link], wanted: list[str] | None) -> Plan:
    if wanted is not None:
        unknown = [name for name in wanted if name not in graph_outputs]
        if unknown:
            raise GraphValidationError([ValidationIssue(
                kind="unknown_output", input=name,
                message=f"graph '{graph.name}' has no output '{name}' (its outputs: "
                        f"{', '.join(graph_outputs) or 'none'})") for name in unknown])
        graph_outputs = {name: graph_outputs[name] for name in wanted}
    output_nodes = [n for n in order if compiled[n].definition.spec.output_node]
    targets = list(dict.fromkeys([src for src, _ in graph_outputs.values()] + output_nodes))
    if not targets:
        if graph.format == "comfy":
            raise GraphValidationError([ValidationIssue(
                kind="prompt_no_outputs", message="the prompt has no output nodes")])
        has_dependents = {dep for node in compiled.values() for dep in node.deps}
        targets = [n for n in order if n not in has_dependents]
    needed = _ancestors_and_self(compiled, targets)
    nodes = {n: compiled[n] for n in order if n in needed}
    _mark_lists(nodes)
    dependents: dict[str, list[str]] = {n: [] for n in nodes}
    for node in nodes.values():
        for dep in node.deps:
            dependents[dep].append(node.id)
    return Plan(graph_name=graph.name, nodes=nodes, outputs=graph_outputs, targets=targets,
                output_nodes=[n for n in output_nodes if n in nodes], dependents=dependents)


def _ancestors_and_self(compiled: dict[str, PlanNode], targets: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(targets)
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        stack.extend(compiled[node_id].deps)
    return seen


def _mark_lists(nodes: dict[str, PlanNode]) -> None:
    """Which outputs carry lists, and which nodes therefore run once per item."""
    listy: dict[str, list[bool]] = {}
    for node in nodes.values():
        spec = node.definition.spec
        list_inputs = {name for name, (src, idx) in node.links.items() if listy[src][idx]}
        for template in node.templates.values():
            if any(listy[src][idx] for src, idx in template.links.values()):
                list_inputs.update(name for name, tpl in node.templates.items() if tpl is template)
        node.list_inputs = frozenset(list_inputs)
        node.mapped = bool(list_inputs) and not spec.input_is_list
        listy[node.id] = [o.is_list or node.mapped for o in spec.outputs]
