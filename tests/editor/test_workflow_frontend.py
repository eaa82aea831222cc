"""Our workflows as ComfyUI's own frontend reads them: for every shipped graph, the
frontend loads the workflow ``graph_to_workflow`` makes, and its own ``graphToPrompt``
sends the prompt ``workflow_to_prompt`` computes, its own save writes the same widget
values and links, and that save converts back to the same graph.

One browser page on the local executor for all graphs (chromium is the slow part)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.loader import load_graph
from engine.registry import Registry
from engine.settings import get_settings
from engine.workflow import graph_to_workflow, workflow_to_graph, workflow_to_prompt
from server.app import create_app
from tests.editor.page import EditorPage
from tests.serving import serving

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = sorted([*ROOT.glob("graphs/*.yaml"), *ROOT.glob("graphs/examples/*.yaml")])


@pytest.fixture(scope="module")
def page(browser: Any, registry: Registry) -> Iterator[EditorPage]:
    from engine.executors.local import LocalExecutor

    executor = LocalExecutor(registry)
    with serving(create_app(get_settings(), registry, executor)) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        editor = EditorPage(context.new_page(), url)
        editor.open()
        editor.settle()
        yield editor
        context.close()
    executor.close()


def load(page: EditorPage, workflow: dict[str, Any]) -> dict[str, Any]:
    """Load a workflow into the frontend; (its prompt, its saved workflow)."""
    return page.js("""async (workflow) => {
        await app.loadGraphData(structuredClone(workflow), true, true, null);
        const prompt = await app.graphToPrompt();
        return {prompt: prompt.output, saved: JSON.parse(JSON.stringify(app.graph.serialize()))};
    }""", workflow)


def numbers_as_floats(value: Any) -> Any:
    """JavaScript has one number type: 7.0 comes back as 7."""
    return json.loads(json.dumps(value), parse_int=float)


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
def test_the_frontend_reads_our_workflow_as_we_do(page: EditorPage, registry: Registry,
                                                  path: Path) -> None:
    workflow = graph_to_workflow(load_graph(path), registry)
    seen = load(page, workflow)
    assert numbers_as_floats(seen["prompt"]) == \
        numbers_as_floats(workflow_to_prompt(workflow, registry))
    saved = {node["id"]: node for node in seen["saved"]["nodes"]}
    for node in workflow["nodes"]:
        theirs = saved[node["id"]]
        # (a node whose only widgets are unsaved, the text preview, saves [] for none)
        assert numbers_as_floats(theirs.get("widgets_values") or []) == \
            numbers_as_floats(node.get("widgets_values", [])), (path.stem, node["type"])
        assert [(i["name"], i.get("link")) for i in theirs["inputs"]] == \
            [(i["name"], i["link"]) for i in node["inputs"]], (path.stem, node["type"])
        assert [o["links"] or [] for o in theirs["outputs"]] == \
            [o["links"] for o in node["outputs"]]
        # Our size estimates are at least what the frontend computes: nothing overlaps.
        assert theirs["size"][0] <= node["size"][0] + 0.5, (path.stem, node["type"],
                                                            theirs["size"], node["size"])
        assert theirs["size"][1] <= node["size"][1] + 0.5, (path.stem, node["type"],
                                                            theirs["size"], node["size"])
    assert sorted(map(list, seen["saved"]["links"])) == sorted(workflow["links"])
    ours = workflow_to_graph(workflow, registry, path.stem)
    assert workflow_to_graph(seen["saved"], registry, path.stem).model_dump(
        exclude={"ui"}) == ours.model_dump(exclude={"ui"})
    assert page.errors == [] and page.failed == []


@pytest.mark.parametrize("modes", [{}, {6: 0}, {2: 4}, {2: 2}],
                         ids=["as-saved", "unbypassed", "bypassed-concat", "muted-concat"])
def test_the_frontend_sends_the_prompt_we_compute_for_an_editor_workflow(
        page: EditorPage, registry: Registry, modes: dict[int, int]) -> None:
    """A workflow as the frontend saves one (compressed widget inputs, a randomized seed,
    a note, a bypassed node), with nodes bypassed (4) and muted (2) in turn."""
    from tests.engine.test_workflow import editor_workflow

    workflow = editor_workflow()
    for node in workflow["nodes"]:
        node["mode"] = modes.get(node["id"], node["mode"])
    seen = load(page, workflow)
    assert numbers_as_floats(seen["prompt"]) == \
        numbers_as_floats(workflow_to_prompt(workflow, registry))
    assert workflow_to_graph(seen["saved"], registry, "mine").model_dump(exclude={"ui"}) == \
        workflow_to_graph(workflow, registry, "mine").model_dump(exclude={"ui"})
