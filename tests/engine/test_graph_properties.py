"""Property tests: no graph, however broken, crashes the loader or the compiler.

Every input ends as a graph and a plan, or as ``GraphLoadError`` / ``GraphValidationError``
naming nodes and inputs; anything else is an engine bug. The entry points are the server's:
``graph_from_data`` then ``validate_graph`` or the executor's compile (POST /graphs/validate,
/runs), ``graph_from_comfy`` then compile (POST /prompt) and ``load_graph`` (graph files).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine import types as t
from engine.compiler import validate_graph
from engine.errors import GraphLoadError, GraphValidationError, ValidationIssue
from engine.executors.local import LocalExecutor
from engine.graph import Graph
from engine.loader import graph_from_comfy, graph_from_data, load_graph
from engine.plan import Plan
from engine.registry import Registry
from engine.spec import InputSpec

# Reproducible in CI (a fixed seed, no example database) and bounded in time.
BOUNDED = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HUGE = 10**5000  # more digits than Python will print: str() and repr() refuse it
huge = st.builds(pow, st.just(10), st.just(5000))  # so Hypothesis can print a failing example
DEEP = functools.reduce(lambda inner, _: [inner], range(5000), [])  # too deep for repr()


@pytest.fixture(scope="module")
def executor(registry: Registry) -> Iterator[LocalExecutor]:
    local = LocalExecutor(registry, max_workers=2)
    yield local
    local.close()


def check_issues(issues: list[ValidationIssue], graph: Graph) -> None:
    """Issues are what the server shows: printable, tied to real nodes."""
    assert str(GraphValidationError(issues))
    for issue in issues:
        assert isinstance(issue, ValidationIssue) and issue.kind and issue.message
        issue.model_dump_json()
        if issue.node_id is not None and not issue.node_id.startswith("outputs."):
            assert issue.node_id in graph.nodes, issue


def check_graph(body: Any, inputs: dict[str, Any], registry: Registry, executor: LocalExecutor,
                load: Callable[[Any], Graph] = graph_from_data) -> Plan | None:
    """Load, validate, compile and (when valid) run a body as the server does; the plan."""
    try:
        graph = load(body)
    except GraphLoadError as exc:
        assert str(exc)
        return None
    issues = validate_graph(graph, registry, inputs)
    check_issues(issues, graph)
    try:
        plan = executor.prepare(graph, inputs)  # what submit runs first
    except GraphValidationError as exc:
        check_issues(exc.issues, graph)
        # Without inputs a graph validates before it is given its required ones, and no
        # GPU-only node can be placed here; validation must have seen any other problem.
        assert exc.issues and (issues or {i.kind for i in exc.issues} <= {
            "required_input_missing", "gpu_unavailable"}), exc
        return None
    assert not issues, "compiled although validation found problems"
    order = list(plan.nodes)
    assert all(order.index(dep) < order.index(node_id)
               for node_id, node in plan.nodes.items() for dep in node.deps), order
    # Valid graphs run: a node may fail (structured, naming it); the engine may not.
    result = executor.run(graph, inputs, timeout=30)
    assert result.status in ("success", "failed"), result
    if result.error is not None:
        assert result.error.node_id in graph.nodes, result.error
    else:
        assert set(result.outputs) == set(graph.outputs)
    return plan


# -- arbitrary JSON-ish values ---------------------------------------------------------

REFERENCE_TEXTS = ["${a.value}", "${inputs.x}", "$${a.value}", "${", "x ${a.0} y", "${a.-1}",
                   "${inputs.}", "${ghost.out}", "$${inputs.x} and ${b.text}", "${a.value"]
STRUCTURAL_KEYS = ["nodes", "inputs", "outputs", "type", "class_type", "name", "version",
                   "format", "_meta", "title", "default", "choices", "required", "min", "max"]
printable = (st.none() | st.booleans() | st.integers() | st.sampled_from([2**63, -(2**63)])
             | st.floats() | st.text(max_size=12) | st.sampled_from(REFERENCE_TEXTS))
keys = st.sampled_from(STRUCTURAL_KEYS) | st.text(max_size=6)


def nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(keys, inner, max_size=5), max_leaves=25)


@BOUNDED
@given(value=nested(printable | huge))
def test_any_json_value_loads_and_compiles_or_gives_a_structured_error(
        value: Any, registry: Registry, executor: LocalExecutor) -> None:
    for load in (graph_from_data, graph_from_comfy):
        check_graph(value, {}, registry, executor, load)


@BOUNDED
@given(text=st.text(max_size=60) | nested(printable).map(json.dumps),  # JSON is YAML too
       suffix=st.sampled_from([".yaml", ".json"]))
@example(text="nodes:\n  a: {type: primitive.Int, inputs: {value: " + "1" * 5000 + "}}",
         suffix=".yaml")
@example(text='{"nodes": {"a": {"inputs": {"value": ' + "9" * 5000 + "}}}}", suffix=".json")
@example(text="[" * 5000 + "]" * 5000, suffix=".json")
@example(text="[" * 5000 + "]" * 5000, suffix=".yaml")
@example(text="\udcff\udcfe not UTF-8", suffix=".yaml")  # surrogateescape: bytes ff fe
def test_any_graph_file_loads_or_gives_a_load_error(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"graph{suffix}"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            assert isinstance(load_graph(path), Graph)
        except GraphLoadError as exc:
            assert str(exc)


# -- random graphs, drawn near validity so that many of them compile and run -------------

NODE_TYPES = ("text.Concat text.Case text.Length math.Add math.Divide math.Round primitive.Int "
              "primitive.String primitive.Json primitive.Show logic.Not logic.Switch "
              "logic.Compare lists.Range lists.Sum lists.Get MyFormat MyJoin MyRange MyTotal "
              "MyLimited V3Multiply V3Label").split()
UNKNOWN_TYPES = ["no.SuchType", "graph:missing", "", "test.NeedsGpu"]  # the last: no GPU here
PORT_TYPES = ["STRING", "INT", "FLOAT", "BOOLEAN", "JSON", "IMAGE", "INT,FLOAT", "*"]
fine = st.none() | st.booleans() | st.integers(-5, 60) | st.text(max_size=8)
TYPED = {"STRING": st.text(max_size=8), "INT": st.integers(-1, 9) | st.just(2**63),
         "FLOAT": st.floats(allow_nan=False), "BOOLEAN": st.booleans()}
small = fine | huge | st.floats() | st.sampled_from(["12", "true", "upper", "=="])
constants = small | st.lists(small, max_size=3) | st.dictionaries(st.text(max_size=3), small,
                                                                  max_size=2)
bad_links = st.builds("${{{}.{}}}".format, st.sampled_from(["a", "b", "c", "ghost", "inputs"]),
                      st.sampled_from(["0", "value", "text", "nope", "7", "-1"]))  # self too
around = st.sampled_from(["", "n=", "$${a.value} "])  # text making a link a template
anything = st.booleans().flatmap(lambda link: bad_links if link else constants | st.builds(
    "{}{}!".format, around, bad_links) | st.sampled_from(["$${a.value}", "${", "${inputs.x"]))
Either = Callable[[st.SearchStrategy[Any], st.SearchStrategy[Any]], Any]
Link = Callable[[str, int, str], Any]  # (node id, output index, output name) -> a link
Nodes = dict[str, tuple[str, dict[str, Any]]]  # node id -> (type, inputs)


def chooser(draw: st.DrawFn) -> Either:
    """``either(good, bad)``: half the graphs never draw ``bad``; the rest 1 or 4 times in 10."""
    chaos = draw(st.sampled_from([0, 0, 1, 4]))
    return lambda good, bad: draw(bad if chaos > draw(st.integers(0, 9)) else good)


def typed(port: str, choices: list[Any] | None = None) -> st.SearchStrategy[Any]:
    return st.sampled_from(choices) if choices else TYPED.get(port, fine | st.lists(fine))


def draw_nodes(draw: st.DrawFn, either: Either, registry: Registry, ids: list[str],
               types: list[str], link: Link, bad: st.SearchStrategy[Any],
               extra: Callable[[InputSpec], list[Any]] = lambda _: []) -> tuple[Nodes, list[Any]]:
    """Node id -> (type, inputs), and a link to every output. Good inputs are typed
    constants, ``extra(spec)`` values and links to an earlier node's fitting output."""
    nodes: Nodes = {}
    outputs: list[tuple[str, int, str, str]] = []

    def fits(spec: InputSpec) -> list[Any]:
        return [link(*out[:3]) for out in outputs if t.compatible(out[3], spec.type)]
    for node_id in draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4, unique=True)):
        # A good type is one whose link-only inputs can be linked to an earlier node.
        usable = [n for n in types if all(fits(i) for i in registry.get(n).spec.inputs
                                          if i.link_only)]
        node_type = either(st.sampled_from(usable), st.sampled_from(types + UNKNOWN_TYPES))
        definition = registry.get(node_type)
        inputs: dict[str, Any] = {}
        for spec in definition.spec.inputs if definition else []:
            good = fits(spec) if spec.link_only else [*fits(spec), *extra(spec)]
            values = st.sampled_from(good) if good else bad
            if not spec.link_only:
                values = values | typed(spec.type, spec.choices)
            if spec.kind == "required" and spec.default is None or draw(st.booleans()):
                inputs[spec.name] = either(values, bad)
        inputs.update(either(st.just({}), st.fixed_dictionaries({}, optional={"bogus": bad})))
        nodes[node_id] = node_type, inputs
        outputs += [(node_id, index, out.name, out.type)
                    for index, out in enumerate(definition.spec.outputs if definition else [])]
    return nodes, [link(*out[:3]) for out in outputs]


@st.composite
def our_graphs(draw: st.DrawFn, registry: Registry) -> tuple[dict[str, Any], dict[str, Any]]:
    """A graph body in our format and the inputs given to it ("z" is never declared)."""
    either = chooser(draw)
    declared: dict[str, dict[str, Any]] = {}
    for name in draw(st.lists(st.sampled_from(["x", "y"]), max_size=2, unique=True)):
        port = draw(st.sampled_from(PORT_TYPES))
        declared[name] = {"type": port, **draw(st.fixed_dictionaries({}, optional={
            "default": typed(port)})), **either(st.just({}), st.fixed_dictionaries({}, optional={
                "default": constants, "required": st.booleans(), "min": st.integers(-3, 3),
                "max": st.integers(0, 50), "choices": st.lists(small, max_size=3)}))}

    def graph_refs(spec: InputSpec) -> list[str]:
        refs = [f"${{inputs.{n}}}" for n, d in declared.items()
                if t.compatible(d["type"], spec.type)]
        return refs + [f"n={ref}" for ref in refs if spec.type == "STRING"]  # templates
    nodes, links = draw_nodes(draw, either, registry, ["a", "b", "c", "d"], NODE_TYPES,
                              lambda node, _, output: f"${{{node}.{output}}}", anything,
                              graph_refs)
    outputs = {name: either(st.sampled_from(links) if links else bad_links, anything)
               for name in draw(st.lists(st.sampled_from(["out", "result"]), unique=True))}
    given = {name: either(typed(spec["type"]), constants) for name, spec in declared.items()
             if either(st.just(True), st.booleans())}
    given.update(either(st.just({}), st.fixed_dictionaries({}, optional={"z": small})))
    nodes_body = {n: {"type": kind, "inputs": inputs} for n, (kind, inputs) in nodes.items()}
    return {"inputs": declared, "nodes": nodes_body, "outputs": outputs}, given


@BOUNDED
@given(data=st.data())
def test_random_graphs_validate_compile_and_run_without_engine_errors(
        data: st.DataObject, registry: Registry, executor: LocalExecutor) -> None:
    check_graph(*data.draw(our_graphs(registry)), registry, executor)


# Values Python cannot print, too big or too deep for Hypothesis to show: written out here.
TEMPLATE = {"a": {"type": "primitive.String", "inputs": {"value": "n=${inputs.x}"}}}
UNPRINTABLE = {
    "a deep constant": ({"nodes": {"a": {"type": "text.Join", "inputs": {"items": DEEP}}}}, {}),
    "a huge input in a template": ({"inputs": {"x": {}}, "nodes": TEMPLATE}, {"x": HUGE}),
    "a huge default": ({"inputs": {"x": {"type": "JSON", "default": HUGE}}, "nodes": TEMPLATE}, {}),
    "a huge choice": ({"inputs": {"x": {"type": "JSON", "choices": [HUGE]}}}, {"x": 1}),
    "a huge comfy widget": ({"1": {"class_type": "MyAdd", "inputs": {"a": HUGE}}}, {}),
    "a huge comfy link": ({"1": {"class_type": "MyTotal", "inputs": {"value": [HUGE, 0]}}}, {}),
}


@pytest.mark.parametrize(("body", "inputs"), UNPRINTABLE.values(), ids=UNPRINTABLE)
def test_values_python_cannot_print_give_structured_errors(
        body: dict[str, Any], inputs: dict[str, Any], registry: Registry,
        executor: LocalExecutor) -> None:
    check_graph(body, inputs, registry, executor)


# -- random ComfyUI API-format prompts --------------------------------------------------

COMFY_TYPES = ["MyAdd", "MyRange", "MyLimited", "V3Multiply", "text.Concat", "math.Add", *[
    "MyFormat", "MyJoin", "MyTotal", "V3Label", "primitive.Show"] * 2]  # output nodes: twice
bad_comfy_links = (st.lists(st.sampled_from(["1", 0]), max_size=3)  # [src, index] at anything:
                   | st.tuples(st.sampled_from(["99", "a b", "3.1", "1", 1, True]) | huge,
                               st.sampled_from([0, -1, 7, True, 1.0, "0"]) | huge).map(list))
comfy_anything = (constants | bad_comfy_links
                  | st.sampled_from(["${1.0}", "$${x}", "$${${a.b}", "${inputs.x}"]))
BODY_BREAKS: list[dict[str, Any]] = [  # merged into a node's object, each breaks it
    {"class_type": 5}, {"class_type": None}, {"inputs": 5}, {"inputs": ["1", 0]},
    {"inputs": {7: 1}}, {"_meta": {"title": 5}}, {"_meta": 7}]


@st.composite
def comfy_prompts(draw: st.DrawFn, registry: Registry) -> dict[Any, Any]:
    either = chooser(draw)
    nodes, _ = draw_nodes(draw, either, registry, ["1", "2", "3", "10", "12:3"], COMFY_TYPES,
                          lambda node, index, _: [node, index], comfy_anything)
    prompt: dict[Any, Any] = {n: {"class_type": kind, "inputs": inputs}
                              for n, (kind, inputs) in nodes.items()}
    for node_id in list(prompt):
        prompt[node_id] = either(st.just(prompt[node_id]), st.sampled_from(BODY_BREAKS).map(
            lambda broken, body=prompt[node_id]: {**body, **broken}) | small)
        if node_id.isdigit() and either(st.just(False), st.booleans()):
            # A number as id: alone it reads as text; beside its text twin it clashes.
            prompt[int(node_id)] = prompt[node_id] if draw(st.booleans()) else prompt.pop(node_id)
    return prompt


@BOUNDED
@given(data=st.data())
@example(data={"1": {"class_type": "MyRange", "inputs": {"count": 2}}, "2": {
    "class_type": "MyFormat", "inputs": {"number": ["1", 0], "prefix": "$${${a.b}"}}})
@example(data={"1": {"class_type": "primitive.Show", "inputs": {"value": ["3.1", 0]}},
               "3.1": {"class_type": "MyAdd"}})
def test_random_comfy_prompts_compile_and_run_or_give_structured_errors(
        data: st.DataObject | dict[str, Any], registry: Registry, executor: LocalExecutor) -> None:
    prompt = data if isinstance(data, dict) else data.draw(comfy_prompts(registry))
    plan = check_graph(prompt, {}, registry, executor, graph_from_comfy)
    # A widget's text reaches the node as written ("${" and "$${" too); a link stays a link.
    for node_id, node in plan.nodes.items() if plan else ():
        body = next(body for key, body in prompt.items() if str(key) == node_id)
        for name, value in node.consts.items():
            wrote = (body.get("inputs") or {}).get(name)
            assert value == wrote if isinstance(wrote, str) else not (
                isinstance(wrote, list) and [type(v) for v in wrote] == [str, int]), (node_id, name)
