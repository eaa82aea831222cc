"""Graphs and ComfyUI's editor workflows, both ways: every shipped graph goes to the
editor and back unchanged, and runs from the editor's prompt as it runs from its file."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from engine.compiler import validate_graph
from engine.files import FileStore
from engine.graph import Graph
from engine.loader import graph_from_comfy, graph_from_data, load_graph
from engine.registry import Registry
from engine.settings import get_settings
from engine.workflow import (
    dump_graph,
    export_file,
    graph_to_workflow,
    workflow_to_graph,
    workflow_to_prompt,
)
from engine.workflow_slots import node_slots

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = sorted([*ROOT.glob("graphs/*.yaml"), *ROOT.glob("graphs/examples/*.yaml")])
MEDIA = ("animate", "background", "edit", "enhance", "imagine", "inpaint", "outpaint",
         "upscale")


def shipped(name: str) -> Graph:
    return load_graph(next(p for p in GRAPHS if p.stem == name))


def by_stem(path: Path) -> str:
    return path.stem


# -- the round trips -----------------------------------------------------------------------

@pytest.mark.parametrize("path", GRAPHS, ids=by_stem)
def test_a_shipped_graph_comes_back_from_the_editor_as_the_same_workflow(
        registry: Registry, path: Path) -> None:
    workflow = graph_to_workflow(load_graph(path), registry)
    again = graph_to_workflow(workflow_to_graph(workflow, registry, path.stem), registry)
    assert again == workflow


@pytest.mark.parametrize("path", GRAPHS, ids=by_stem)
def test_a_workflow_saved_as_yaml_and_opened_again_is_identical(registry: Registry,
                                                                 path: Path) -> None:
    workflow = graph_to_workflow(load_graph(path), registry)
    text = dump_graph(workflow_to_graph(workflow, registry, path.stem))
    reread = graph_from_data(yaml.safe_load(text), default_name=path.stem)
    assert graph_to_workflow(reread, registry) == workflow
    assert reread == workflow_to_graph(workflow, registry, path.stem)


def without_defaults(graph: Graph, registry: Registry) -> dict[str, Any]:
    """The graph as data, minus ui and constants that only repeat an input's default."""
    data = graph.model_dump(exclude={"ui"})
    for node in data["nodes"].values():
        spec = registry.get(node["type"]).spec
        node["inputs"] = {k: v for k, v in node["inputs"].items()
                          if spec.input(k) is None or v != spec.input(k).default}
    return data


@pytest.mark.parametrize("path", GRAPHS, ids=by_stem)
def test_a_shipped_graph_read_back_from_the_editor_means_the_same_and_validates(
        registry: Registry, path: Path) -> None:
    graph = load_graph(path)
    back = workflow_to_graph(graph_to_workflow(graph, registry), registry, path.stem)
    # A widget always holds a value; one equal to the input's default is not written back.
    assert without_defaults(back, registry) == without_defaults(graph, registry)
    assert validate_graph(back, registry) == validate_graph(graph, registry)


@pytest.mark.parametrize("path", GRAPHS, ids=by_stem)
def test_an_api_prompt_opens_in_the_editor_as_the_graph_it_came_from(registry: Registry,
                                                                    path: Path) -> None:
    """A prompt holds no input limits or descriptions; everything else comes back, and
    the editor sends the same prompt again."""
    workflow = graph_to_workflow(load_graph(path), registry)
    prompt = json.loads(json.dumps(workflow_to_prompt(workflow, registry)))
    reopened = graph_to_workflow(graph_from_comfy(prompt, name=path.stem), registry)
    assert workflow_to_prompt(reopened, registry) == prompt
    parts = {"ui", "inputs", "description"}
    assert workflow_to_graph(reopened, registry, path.stem).model_dump(exclude=parts) == \
        workflow_to_graph(workflow, registry, path.stem).model_dump(exclude=parts)


def test_unusual_names_and_values_survive_the_editor_and_yaml(registry: Registry) -> None:
    graph = Graph.model_validate({
        "name": "edge", "description": "Line one\nline two: with colon\n",
        "inputs": {
            "text": {"type": "STRING", "default": "yes", "description": "a: b",
                     "choices": ["yes", "no"]},
            "n": {"type": "INT", "default": 3, "required": False, "min": 0.5, "max": 10},
            "blob": {"type": "JSON", "default": [1, {"a": None}]},
            "path": {"type": "IMAGE", "default": "123"},
            "msg": {"type": "MESSAGES"},
            "flag": {"type": "BOOLEAN", "default": True}},
        "nodes": {
            "a-b:c": {"type": "text.Concat", "inputs": {
                "a": "multi\nline ${inputs.text}\n  end", "b": "$${literal} ünï",
                "separator": "\n"}},
            "sw": {"type": "logic.Switch", "inputs": {
                "condition": "${inputs.flag}", "on_true": {"k": [1, 2]}, "on_false": None}},
            "cmp": {"type": "logic.Compare", "inputs": {"a": 1.5, "b": "${a-b:c.text}",
                                                        "op": "!="}},
            "sl": {"type": "lists.Slice", "inputs": {"items": [1, 2, 3], "start": 1}},
            "tpl": {"type": "primitive.Show", "inputs": {
                "value": "${inputs.n}/${inputs.blob}/${inputs.n}: $${x} ${sw.value}"}},
            "msgs": {"type": "llm.Messages", "inputs": {"message": "${inputs.text}",
                                                        "history": "${inputs.msg}"}}},
        "outputs": {"o": "${a-b:c.text}", "s": "${sw.value}", "t": "${tpl.value}",
                    "sl": "${sl.items}"}})
    workflow = graph_to_workflow(graph, registry)
    back = workflow_to_graph(workflow, registry, "edge")
    assert back.model_dump(exclude={"ui"}) == graph.model_dump(exclude={"ui"})
    reread = graph_from_data(yaml.safe_load(dump_graph(back)))
    assert reread == back and graph_to_workflow(reread, registry) == workflow
    # An optional input the graph leaves out is null in its widget, and not sent.
    prompt = workflow_to_prompt(workflow, registry)
    slice_node = next(v for v in prompt.values() if v["class_type"] == "lists.Slice")
    assert "stop" not in slice_node["inputs"] and slice_node["inputs"]["start"] == 1


def test_a_graph_file_written_by_dump_graph_reads_like_the_shipped_ones(
        registry: Registry) -> None:
    text = dump_graph(workflow_to_graph(graph_to_workflow(shipped("upscale"), registry),
                                        registry, "upscale"))
    top = [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]
    assert top == ["version", "name", "description", "inputs", "nodes", "outputs", "ui"]
    assert "  scale: {type: FLOAT, default: 2.0, min: 1, max: 8}" in text
    assert "    inputs: {image: \"${source.image}\", scale: \"${inputs.scale}\", model: " \
           "\"${inputs.model}\"}" in text
    assert '  file: "${save.file_id}"' in text


# -- the workflow itself -------------------------------------------------------------------

NODE_KEYS = ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs",
             "properties")


@pytest.mark.parametrize("path", GRAPHS, ids=by_stem)
def test_a_workflow_has_the_shape_the_frontend_schema_asks(registry: Registry,
                                                            path: Path) -> None:
    """zComfyWorkflow / zComfyNode (workflowSchema.ts): required keys and types, links as
    [id, origin, origin slot, target, target slot, type] that agree with the nodes."""
    workflow = graph_to_workflow(load_graph(path), registry)
    assert workflow["version"] == 0.4 and workflow["groups"] == [] and workflow["config"] == {}
    assert set(workflow["extra"]["ds"]) == {"scale", "offset"}
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for node in workflow["nodes"]:
        assert all(key in node for key in NODE_KEYS)
        assert isinstance(node["id"], int) and node["properties"]["Node name for S&R"] == \
            node["type"]
        assert len(node["pos"]) == 2 and len(node["size"]) == 2
    assert workflow["last_node_id"] == max(nodes)
    assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])
    for link_id, origin, slot, target, target_slot, port in workflow["links"]:
        assert link_id in nodes[origin]["outputs"][slot]["links"]
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
        assert port == nodes[target]["inputs"][target_slot]["type"]
    linked = sorted(i["link"] for n in nodes.values() for i in n["inputs"] if i["link"])
    assert linked == sorted(link[0] for link in workflow["links"])


def test_widget_values_follow_the_widgets_with_a_fixed_seed_control(registry: Registry) -> None:
    """useIntWidget adds control_after_generate after an INT named seed; "fixed" keeps
    the frontend from changing the seed after a run (a graph's -1 already means random)."""
    workflow = graph_to_workflow(shipped("imagine"), registry)
    generate = next(n for n in workflow["nodes"] if n.get("title") == "generate")
    names = [i["name"] for i in generate["inputs"] if "widget" in i]
    values = generate["widgets_values"]
    seed = names.index("seed")
    assert values[seed] == -1 and values[seed + 1] == "fixed"
    assert len(values) == len(names) + 1
    assert values[names.index("width") + 1] == 512
    sockets = [i["name"] for i in generate["inputs"] if "widget" not in i]
    assert [i["name"] for i in generate["inputs"]] == sockets + names  # sockets first


def test_graph_inputs_become_input_nodes_with_name_type_and_value(registry: Registry) -> None:
    workflow = graph_to_workflow(shipped("greeting"), registry)
    inputs = [n for n in workflow["nodes"] if n["type"] == "graph.Input"]
    assert [n["widgets_values"] for n in inputs] == [
        ["name", "STRING", "world"],
        ["details", "JSON", '{"weather": "sunny", "place": "the lake"}']]
    assert inputs[0]["properties"]["description"] == "who to greet"
    imagine = graph_to_workflow(shipped("imagine"), registry)
    prompt = next(n for n in imagine["nodes"] if n["widgets_values"][:1] == ["prompt"])
    assert prompt["properties"]["has_default"] is False
    width = next(n for n in imagine["nodes"] if n["widgets_values"][:1] == ["width"])
    assert width["widgets_values"] == ["width", "INT", "512"]
    assert (width["properties"]["min"], width["properties"]["max"]) == (64, 2048)


def test_a_template_string_becomes_a_template_node(registry: Registry) -> None:
    workflow = graph_to_workflow(shipped("branches"), registry)
    template = next(n for n in workflow["nodes"] if n["type"] == "graph.Template")
    assert template["widgets_values"] == ["${a} words, ${b} letters each: ${c}"]
    assert [i["name"] for i in template["inputs"] if i["link"]] == ["a", "b", "c"]


def boxes(workflow: dict[str, Any]) -> list[tuple[float, float, float, float]]:
    # A node's title bar (30 px) is drawn above pos.
    return [(n["pos"][0], n["pos"][1] - 30, n["pos"][0] + n["size"][0],
             n["pos"][1] + n["size"][1]) for n in workflow["nodes"]]


@pytest.mark.parametrize("path", GRAPHS, ids=by_stem)
def test_no_two_nodes_overlap_and_links_run_left_to_right(registry: Registry,
                                                          path: Path) -> None:
    workflow = graph_to_workflow(load_graph(path), registry)
    placed = boxes(workflow)
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    x = {n["id"]: n["pos"][0] for n in workflow["nodes"]}
    assert all(x[origin] < x[target] for _, origin, _, target, _, _ in workflow["links"])


# -- the frontend's view of our nodes -------------------------------------------------------

FRONTEND_WIDGETS = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"}


def frontend_layout(info: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """litegraphService.addInputs on an /object_info entry, after uploadImage.ts added its
    upload input: (sockets, widgets as (name, type, has a control_after_generate))."""
    specs = [(name, kind, info["input"][kind][name]) for kind in ("required", "optional")
             for name in info["input_order"].get(kind, [])]
    upload = next((name for name, kind, entry in specs if kind == "required"
                   and isinstance(entry[0], list) and len(entry) > 1
                   and entry[1].get("image_upload") is True), None)
    sockets, widgets = [], []
    for name, _, entry in specs:
        options = entry[1] if len(entry) > 1 else {}
        port = "COMBO" if isinstance(entry[0], list) else entry[0]
        if port not in FRONTEND_WIDGETS or options.get("forceInput"):
            sockets.append(name)
            continue
        control = options.get("control_after_generate")
        if control is None and port == "INT":
            control = name in ("seed", "noise_seed")
        widgets.append((name, port, bool(control)))
    if upload is not None:  # not in input_order: after every other input
        widgets.append(("upload", "IMAGEUPLOAD", False))
    return sockets, widgets


def test_our_widget_layout_is_what_the_frontend_makes_of_object_info(registry: Registry) -> None:
    """Against GET /object_info as served: open choices (options_from) listed as combos."""
    from server.services.comfy import object_info

    for spec in registry.specs():
        options = {i.options_from: ["x"] for i in spec.inputs if i.options_from}
        slots = node_slots(spec)
        ours = ([s.name for s in slots.sockets],
                [(w.name, w.type, w.control) for w in slots.widgets])
        assert ours == frontend_layout(object_info(spec, options)), spec.type


def test_a_picture_input_gets_the_upload_button_value_as_comfyui_saves_it(
        registry: Registry) -> None:
    workflow = graph_to_workflow(shipped("upscale"), registry)
    load = next(n for n in workflow["nodes"] if n["type"] == "image.Load")
    assert load["widgets_values"] == ["", "image"]  # LoadImage: ["x.png", "image"]
    assert [i["name"] for i in load["inputs"]] == ["path", "upload"]
    prompt = workflow_to_prompt(workflow, registry)
    assert set(prompt[str(load["id"])]["inputs"]) == {"path"}


# -- workflows made in the editor --------------------------------------------------------

def editor_workflow() -> dict[str, Any]:
    """As the frontend saves one: untitled nodes, unlinked widget inputs left out
    (compressWidgetInputSlots), a randomized seed, a note, a moved view."""
    return {
        "id": "0b0b0b0b-1111-4222-8333-444444444444", "revision": 3,
        "last_node_id": 7, "last_link_id": 4,
        "nodes": [
            {"id": 2, "type": "text.Concat", "pos": [400.5, 100], "size": [300, 120],
             "flags": {}, "order": 1, "mode": 0,
             "inputs": [{"name": "a", "type": "STRING", "widget": {"name": "a"}, "link": 1}],
             "outputs": [{"name": "text", "type": "STRING", "links": [2, 3]}],
             "properties": {"Node name for S&R": "text.Concat"},
             "widgets_values": ["", "world", " "]},
            {"id": 1, "type": "primitive.String", "pos": [0, 100], "size": [300, 100],
             "flags": {}, "order": 0, "mode": 0, "inputs": [],
             "outputs": [{"name": "value", "type": "STRING", "links": [1]}],
             "properties": {"Node name for S&R": "primitive.String"},
             "widgets_values": ["Hello ${name}"], "color": "#223"},
            {"id": 5, "type": "graph.Output", "pos": [800, 100], "size": [270, 60],
             "flags": {}, "order": 2, "mode": 0,
             "inputs": [{"name": "value", "type": "*", "link": 2}],
             "outputs": [{"name": "value", "type": "*", "links": []}],
             "properties": {"Node name for S&R": "graph.Output"}, "widgets_values": ["text"],
             "title": "The text"},
            {"id": 6, "type": "image.TextToImage", "pos": [800, 300], "size": [300, 400],
             "flags": {"collapsed": True}, "order": 3, "mode": 4,
             "inputs": [{"name": "prompt", "type": "STRING", "widget": {"name": "prompt"},
                         "link": 3}],
             "outputs": [{"name": "images", "type": "IMAGE", "links": []},
                         {"name": "seed", "type": "INT", "links": []},
                         {"name": "seeds", "type": "JSON", "links": []},
                         {"name": "model", "type": "STRING", "links": []}],
             "properties": {"Node name for S&R": "image.TextToImage"},
             "widgets_values": ["", "", 4, 7.0, 42, "randomize", 1, "default", "normal",
                                False, "", 64, 64]},
            {"id": 7, "type": "Note", "pos": [0, 400], "size": [200, 80], "flags": {},
             "order": 4, "mode": 0, "properties": {}, "widgets_values": ["remember"]},
        ],
        "links": [[1, 1, 0, 2, 0, "STRING"], [2, 2, 0, 5, 0, "*"], [3, 2, 0, 6, 0, "STRING"]],
        "groups": [{"title": "Text", "bounding": [0, 0, 720, 300]}],
        "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [10, -20]},
                                "frontendVersion": "1.58.1"},
        "version": 0.4}


def test_an_editor_workflow_becomes_a_graph_with_ids_from_titles(registry: Registry) -> None:
    graph = workflow_to_graph(editor_workflow(), registry, "mine")
    assert list(graph.nodes) == ["string", "concatenate_texts", "text_to_image"]
    assert graph.nodes["string"].inputs == {"value": "Hello $${name}"}  # literal ${, escaped
    assert graph.nodes["concatenate_texts"].inputs == {
        "a": "${string.value}", "b": "world", "separator": " "}
    assert graph.nodes["text_to_image"].inputs["seed"] == 42
    assert graph.outputs == {"text": "${concatenate_texts.text}"}
    ui = graph.ui or {}
    assert ui["nodes"]["text_to_image"]["controls"] == {"seed": "randomize"}
    assert ui["nodes"]["text_to_image"]["mode"] == 4
    assert ui["nodes"]["outputs.text"]["title"] == "The text"
    assert ui["notes"][0]["widgets_values"] == ["remember"]
    assert ui["workflow_id"] == editor_workflow()["id"]


def test_an_editor_workflow_is_stable_after_one_pass_through_yaml(registry: Registry) -> None:
    first = graph_to_workflow(workflow_to_graph(editor_workflow(), registry, "mine"), registry)
    text = dump_graph(workflow_to_graph(first, registry, "mine"))
    again = graph_to_workflow(graph_from_data(yaml.safe_load(text), "mine"), registry)
    assert again == first
    original = {n["id"]: n for n in editor_workflow()["nodes"]}
    for node in first["nodes"]:
        assert node["pos"] == original[node["id"]]["pos"]
        assert node["size"] == original[node["id"]]["size"]
    assert first["groups"] == editor_workflow()["groups"]
    assert first["extra"]["ds"] == {"scale": 0.8, "offset": [10, -20]}
    assert first["extra"]["frontendVersion"] == "1.58.1"
    assert (first["id"], first["revision"]) == (editor_workflow()["id"], 3)


def test_the_prompt_skips_control_values_and_bypassed_nodes(registry: Registry) -> None:
    prompt = workflow_to_prompt(editor_workflow(), registry)
    assert set(prompt) == {"1", "2", "5"}  # 6 is bypassed, 7 is a note
    assert prompt["2"] == {"inputs": {"a": ["1", 0], "b": "world", "separator": " "},
                           "class_type": "text.Concat",
                           "_meta": {"title": "Concatenate Texts"}}
    assert prompt["5"]["inputs"] == {"name": "text", "value": ["2", 0]}
    assert prompt["5"]["_meta"]["title"] == "The text"
    bypass = editor_workflow()
    bypass["nodes"][3]["mode"] = 0
    generate = workflow_to_prompt(bypass, registry)["6"]["inputs"]
    assert generate["seed"] == 42 and "randomize" not in generate.values()
    assert generate["prompt"] == ["2", 0]


def test_a_bypassed_node_passes_its_matching_input_through(registry: Registry) -> None:
    workflow = editor_workflow()
    workflow["nodes"][0]["mode"] = 4  # bypass the Concat: its STRING input feeds on
    prompt = workflow_to_prompt(workflow, registry)
    assert prompt["5"]["inputs"]["value"] == ["1", 0]
    workflow["nodes"][0]["mode"] = 2  # mute it: what it fed loses the input
    prompt = workflow_to_prompt(workflow, registry)
    assert "value" not in prompt["5"]["inputs"]


def test_a_workflow_with_a_node_that_is_not_installed_is_refused(registry: Registry) -> None:
    from engine.errors import GraphLoadError

    workflow = editor_workflow()
    workflow["nodes"][0]["type"] = "FaceDetailer"
    with pytest.raises(GraphLoadError, match="FaceDetailer"):
        workflow_to_graph(workflow, registry)


def test_titles_and_ids_that_titles_do_not_give_survive_the_editor(registry: Registry,
                                                                   make_graph: Any) -> None:
    graph = make_graph({
        "First": {"type": "text.Concat", "inputs": {"a": "x"}},
        "first": {"type": "text.Concat", "inputs": {"a": "${First.text}"},
                  "title": "First"},
        "shout": {"type": "text.Case", "inputs": {"text": "${first.text}", "mode": "upper"},
                  "title": "Shout it!"},
        "t": {"type": "graph.Template", "inputs": {"template": "<$${a}>",
                                                   "a": "${shout.text}"}}},
        outputs={"t": "${t.text}"})
    back = workflow_to_graph(graph_to_workflow(graph, registry), registry, "test")
    assert back.model_dump(exclude={"ui"}) == graph.model_dump(exclude={"ui"})


# -- the nodes that stand for a graph's own parts ---------------------------------------------

def test_graph_output_nodes_name_the_outputs_of_an_api_prompt() -> None:
    graph = graph_from_comfy({
        "1": {"class_type": "primitive.Int", "inputs": {"value": 3}},
        "2": {"class_type": "graph.Output", "inputs": {"name": "three", "value": ["1", 0]}},
        "3": {"class_type": "graph.Output", "inputs": {"name": "three", "value": ["1", 0]}}})
    assert graph.outputs == {"three": "${2.value}"}


def test_list_widget_values_are_unwrapped_as_comfyui_does() -> None:
    graph = graph_from_comfy({"1": {"class_type": "primitive.Json",
                                    "inputs": {"value": {"__value__": ["4", 0]}}}})
    assert graph.nodes["1"].inputs == {"value": ["4", 0]}


def run_prompt(executor: Any, prompt: dict[str, Any]) -> Any:
    result = executor.run(graph_from_comfy(prompt), {}, timeout=60)
    return result


def test_graph_input_and_constant_nodes_type_their_text(executor: Any) -> None:
    prompt = {
        "1": {"class_type": "graph.Input", "inputs": {"name": "n", "type": "INT",
                                                      "value": "41"}},
        "2": {"class_type": "graph.Constant", "inputs": {"type": "JSON",
                                                         "value": '{"k": [1, 2]}'}},
        "3": {"class_type": "graph.Template", "inputs": {
            "template": "${a}+1 $${a} ${b}", "a": ["1", 0], "b": ["2", 0]}},
        "4": {"class_type": "graph.Output", "inputs": {"name": "n", "value": ["1", 0]}},
        "5": {"class_type": "graph.Output", "inputs": {"name": "text", "value": ["3", 0]}},
        "6": {"class_type": "graph.Output", "inputs": {"name": "json", "value": ["2", 0]}}}
    result = run_prompt(executor, prompt)
    assert result.status == "success", result.error
    assert result.outputs == {"n": 41, "text": "41+1 ${a} {'k': [1, 2]}",
                              "json": {"k": [1, 2]}}
    assert result.ui["6"] == {"text": ['{"k": [1, 2]}']}


def test_a_graph_input_without_a_usable_value_fails_naming_it(executor: Any) -> None:
    result = run_prompt(executor, {
        "1": {"class_type": "graph.Input", "inputs": {"name": "size", "type": "INT",
                                                      "value": "big"}},
        "2": {"class_type": "graph.Output", "inputs": {"name": "size", "value": ["1", 0]}}})
    assert result.status == "failed"
    assert "graph input 'size'" in result.error.message and "INT" in result.error.message


# -- running from the editor computes what the file computes --------------------------------

def files() -> FileStore:
    return FileStore(get_settings().home / "files")


def is_file(value: Any) -> bool:
    return isinstance(value, str) and "." in value and files().exists(value)


MEDIA_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".mp4"}


def frames(file_id: str) -> list[np.ndarray]:
    """Every frame of a picture (a still, an animated WebP) or a video, decoded."""
    path = files().path(file_id)
    if path.suffix == ".mp4":
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path))
        meta = reader.__next__()
        width, height = meta["size"]
        return [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    with Image.open(path) as image:
        out = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            out.append(np.asarray(image.convert("RGBA")).copy())
        return out


def assert_same_outputs(expected: dict[str, Any], got: dict[str, Any]) -> None:
    """Equal values; files (new ids each run) equal pixel for pixel."""
    assert set(got) == set(expected)
    for name, value in expected.items():
        mine = got[name]
        if isinstance(value, list) and value and all(is_file(v) for v in value):
            assert len(mine) == len(value), name
            pairs = list(zip(value, mine, strict=True))
        elif is_file(value):
            pairs = [(value, mine)]
        else:
            assert mine == value, name
            continue
        for theirs, ours in pairs:
            if files().path(theirs).suffix not in MEDIA_SUFFIXES:  # a document: its bytes
                assert files().read(theirs) == files().read(ours), name
                continue
            a, b = frames(theirs), frames(ours)
            assert len(a) == len(b), name
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), name


def run_both_ways(executor: Any, registry: Registry, graph: Graph,
                  inputs: dict[str, Any]) -> None:
    """Run the graph file with ``inputs``, then the same graph through the editor (its
    inputs as the graph.Input values) as the Run button's prompt; compare outputs."""
    direct = executor.run(graph, inputs, timeout=300)
    assert direct.status == "success", direct.error
    given = {name: spec.model_copy(update={"default": inputs[name]}) if name in inputs
             else spec for name, spec in graph.inputs.items()}
    workflow = graph_to_workflow(graph.model_copy(update={"inputs": given}), registry)
    prompt = json.loads(json.dumps(workflow_to_prompt(workflow, registry)))  # as sent
    executor.clear_cache()  # recompute everything: the editor's run proves itself
    from_editor = executor.run(graph_from_comfy(prompt, name=graph.name), {}, timeout=300)
    assert from_editor.status == "success", from_editor.error
    assert_same_outputs(direct.outputs, from_editor.outputs)


LIGHT_INPUTS = {
    "arithmetic": {"x": 2},
    "branches": {"text": "extraordinary vocabulary"},
    "greeting": {"name": "Ada", "details": {"weather": "windy", "place": "sea"}},
    "list_map": {"count": 4, "factor": 0.5},
    "thumbnail": {"color": "#ff0000", "size": 16},
}


@pytest.mark.parametrize("name", sorted(LIGHT_INPUTS))
def test_an_example_runs_from_the_editor_as_from_its_file(executor: Any, registry: Registry,
                                                         name: str) -> None:
    run_both_ways(executor, registry, shipped(name), LIGHT_INPUTS[name])


def store_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return files().save(buffer.getvalue(), ".png")


def picture(width: int = 32, height: int = 24) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1)
    rgb[height // 3:2 * height // 3, width // 3:2 * width // 3] = (250, 240, 20)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def media_inputs(name: str) -> dict[str, Any]:
    """Small pictures, two or three steps, fixed seeds."""
    source = store_png(picture())
    if name == "imagine":
        return {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 11}
    if name == "edit":
        return {"image": source, "prompt": "a blue sky", "steps": 3, "seed": 7}
    if name == "inpaint":
        mask = Image.new("RGB", (32, 24), "black")
        mask.paste((255, 255, 255), (8, 8, 24, 16))
        return {"image": source, "mask": store_png(mask), "prompt": "a fox", "steps": 2,
                "seed": 3}
    if name == "outpaint":
        return {"image": source, "right": 16, "seed": 5, "model": "classic"}
    if name == "upscale":
        return {"image": source, "scale": 2.0}
    if name == "background":
        return {"image": source, "action": "blur", "blur_strength": 5}
    if name == "enhance":
        return {"image": source, "mode": "photo"}
    return {"image": source, "frames": 3, "fps": 8, "width": 32, "height": 24, "steps": 2,
            "seed": 3}


@pytest.mark.parametrize("name", MEDIA)
def test_a_media_graph_runs_from_the_editor_as_from_its_file(executor: Any, registry: Registry,
                                                            test_pack: list[str],
                                                            name: str) -> None:
    run_both_ways(executor, registry, shipped(name), media_inputs(name))


def test_chat_runs_from_the_editor_as_from_its_file(executor: Any, registry: Registry) -> None:
    run_both_ways(executor, registry, shipped("chat"), {
        "message": "Name a colour.", "temperature": 0, "max_tokens": 6, "seed": 1,
        "history": [{"role": "user", "content": "Hi."},
                    {"role": "assistant", "content": "Hello!"}]})


PROVIDER_PORT = 11434  # the default provider URL: trusted in every process, Ray's too


@contextmanager
def provider_at_default_url() -> Iterator[str]:
    """The reversing OpenAI-compatible provider of tests/nodes/test_llm_remote.py on
    127.0.0.1:11434, HomePilot's default llm_base_url (skipped if the port is taken)."""
    from tests.nodes.test_llm_remote import provider_app
    from tests.serving import serving

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", PROVIDER_PORT)) == 0:
            pytest.skip(f"port {PROVIDER_PORT} is in use (an Ollama?)")
    with serving(provider_app([]), port=PROVIDER_PORT) as base:
        yield f"{base}/v1"


def test_remote_chat_runs_from_the_editor_as_from_its_file(executor: Any,
                                                          registry: Registry) -> None:
    with provider_at_default_url() as base_url:
        run_both_ways(executor, registry, shipped("chat_remote"), {
            "message": "one two three", "base_url": base_url, "model": "tiny",
            "temperature": 0})


def _hit(id_: int, text: str, page: int) -> dict[str, Any]:
    return {"id": id_, "document": "notes.pdf", "page": page, "section": "", "text": text,
            "score": 1.0 / id_}


KNOWLEDGE = ("embed", "ingest", "rag_chat", "persona_session_end")


def _knowledge_inputs(executor: Any, name: str) -> dict[str, Any]:
    from server.services import recollection

    if name == "embed":
        return {"texts": ["a red fox", "a blue sky"]}
    if name == "ingest":
        text = "The keeper's vault code is amber falcon 7319. " * 20
        return {"file": executor.file_store().save(text.encode(), ".txt"), "name": "notes.txt",
                "size": 48, "overlap": 8}
    if name == "rag_chat":
        hits = {"vector": [_hit(1, "The vault code is amber falcon.", 3)],
                "keyword": [_hit(2, "Falcons nest on cliffs.", 5),
                            _hit(1, "The vault code is amber falcon.", 3)]}
        return {"message": "What is the vault code?", "hits": hits, "temperature": 0,
                "max_tokens": 8, "seed": 1}
    statements = ["My name is Zoe.", "I am allergic to peanuts."]
    return {"statements": recollection.numbered(statements),
            "schema": recollection.schema(len(statements)), "max_tokens": 200}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", KNOWLEDGE)
def test_the_knowledge_and_persona_graphs_run_from_the_editor_as_from_their_files(
        executor: Any, registry: Registry, name: str) -> None:
    run_both_ways(executor, registry, shipped(name), _knowledge_inputs(executor, name))


def test_every_shipped_graph_has_a_run_from_the_editor_test() -> None:
    covered = {*LIGHT_INPUTS, *MEDIA, *KNOWLEDGE, "chat", "chat_remote"}
    assert {p.stem for p in GRAPHS} == covered


# -- homepilot graph export -----------------------------------------------------------------

def export(*args: str) -> Any:
    from server.cli import main

    return CliRunner().invoke(main, ["graph", "export", *args], catch_exceptions=False)


def test_export_turns_a_graph_file_into_a_workflow_the_editor_opens(registry: Registry,
                                                                   tmp_path: Path) -> None:
    path = ROOT / "graphs/examples/greeting.yaml"
    out = export(str(path), "--format", "comfy-ui")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == graph_to_workflow(load_graph(path), registry)


def test_export_chains_yaml_workflow_prompt_and_back(registry: Registry,
                                                    tmp_path: Path) -> None:
    source = ROOT / "graphs/examples/arithmetic.yaml"
    ui_file, yaml_file, api_file = (tmp_path / "w.json", tmp_path / "g.yaml",
                                    tmp_path / "p.json")
    assert export(str(source), "--format", "comfy-ui", "-o", str(ui_file)).exit_code == 0
    assert export(str(ui_file), "--format", "yaml", "-o", str(yaml_file)).exit_code == 0
    reopened = json.loads(export(str(yaml_file), "--format", "comfy-ui").output)
    assert reopened == json.loads(ui_file.read_text())
    assert export(str(yaml_file), "--format", "comfy-api", "-o", str(api_file)).exit_code == 0
    prompt = json.loads(api_file.read_text())
    assert prompt == workflow_to_prompt(json.loads(ui_file.read_text()), registry)
    back = export(str(api_file), "--format", "yaml")
    graph = graph_from_data(yaml.safe_load(back.output))
    assert graph.format == "comfy" and set(graph.outputs) == set(load_graph(source).outputs)
    assert export_file(api_file, "comfy-api", registry) == api_file.read_text()


def test_running_an_editor_workflow_file_says_to_convert_it_first(registry: Registry,
                                                                 tmp_path: Path) -> None:
    from engine.errors import GraphLoadError

    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(editor_workflow()))
    with pytest.raises(GraphLoadError, match="homepilot graph export"):
        load_graph(saved)


def test_export_of_a_file_that_is_no_graph_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [{"id": 1, "type": "FaceDetailer", "pos": [0, 0], '
                   '"size": [1, 1]}], "links": []}')
    out = export(str(bad), "--format", "yaml")
    assert out.exit_code != 0 and "FaceDetailer" in out.output and "not installed" in out.output
