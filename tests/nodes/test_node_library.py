"""The node library as the editor shows it: every built-in node has a category, a display
name, a one-line description, bounded and typed widgets and named outputs; model inputs
offer the installed models and image.Load the pictures of the input folder, without the
engine holding graphs to those lists."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from engine.compiler import validate_graph
from engine.declare import Input, Node, NodeOutputs, node
from engine.loader import graph_from_comfy, graph_from_data
from engine.models.store import ModelStore
from engine.registry import Registry
from engine.settings import get_settings
from engine.spec import InputSpec, NodeSpec
from nodes import build_registry
from nodes.backends.bundled import MINILM, SMOLLM2
from server.services.comfy import input_images, input_options, object_info, object_infos

CATEGORY = re.compile(r"[a-z]+(/[a-z]+)*")
OUTPUT_NAME = re.compile(r"[a-z][a-z0-9_]*")
# Text that is written at length: prompts, templates, system messages.
LONG_TEXT = {"prompt", "negative_prompt", "template", "system", "message", "text"}
NUMBERS = {"INT", "FLOAT"}


LIBRARY = build_registry()
SPECS = [spec for spec in LIBRARY.specs() if spec.source == "builtin"]
BY_TYPE = {spec.type: spec for spec in SPECS}


def widgets(spec: NodeSpec) -> list[InputSpec]:
    """Inputs the editor shows as a widget (a constant can be typed in)."""
    return [i for i in spec.inputs if i.kind != "hidden" and not i.link_only]


# -- every node ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
def test_every_node_sits_in_a_category_under_its_domain(spec: NodeSpec) -> None:
    assert CATEGORY.fullmatch(spec.category), spec.category
    assert spec.category.split("/")[0] == spec.type.split(".")[0]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
def test_every_node_has_a_display_name_in_words(spec: NodeSpec) -> None:
    name = spec.display_name
    assert name and name != spec.type and "." not in name
    assert not re.search(r"[a-z][A-Z]", name), f"{name!r} runs words together"
    assert name[0].isupper() and name == name.strip()


def test_display_names_tell_nodes_apart() -> None:
    twice = [name for name, n in Counter(s.display_name for s in SPECS).items() if n > 1]
    assert twice == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
def test_every_node_opens_its_description_with_one_short_sentence(spec: NodeSpec) -> None:
    first = spec.description.split("\n\n")[0]
    assert first and "\n" not in first
    assert first.endswith(".") and len(first) <= 100, first
    assert not re.search(r"[.!?]\s+[A-Z]", first), f"more than one sentence: {first!r}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
def test_every_node_names_its_outputs(spec: NodeSpec) -> None:
    names = [o.name for o in spec.outputs]
    assert names and len(set(names)) == len(names)
    assert all(OUTPUT_NAME.fullmatch(n) for n in names), names


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
def test_number_widgets_are_bounded_and_floats_have_a_step(spec: NodeSpec) -> None:
    """The editor clamps a number without bounds to [0, 2048] and rounds a FLOAT without a
    step to one decimal: every number widget states its range (and a FLOAT its step)."""
    for item in widgets(spec):
        if item.type not in NUMBERS or item.choices is not None:
            continue
        where = f"{spec.type}.{item.name}"
        assert item.min is not None and item.max is not None, f"{where} has no bounds"
        assert item.min < item.max, where
        if item.default is not None:
            assert item.min <= item.default <= item.max, where
        if item.type == "FLOAT":
            assert item.step is not None and item.step > 0, f"{where} has no step"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
def test_long_texts_are_multiline_and_choices_hold_their_default(spec: NodeSpec) -> None:
    for item in widgets(spec):
        if item.type == "STRING" and (item.name in LONG_TEXT or item.name.endswith("_prompt")):
            assert item.multiline, f"{spec.type}.{item.name} should be multiline"
        if item.choices is not None and item.default is not None:
            assert item.default in item.choices, f"{spec.type}.{item.name}"


@pytest.mark.parametrize("spec", [s for s in SPECS if s.model_kind], ids=lambda s: s.type)
def test_model_bound_nodes_offer_the_models_of_their_kind(spec: NodeSpec) -> None:
    model = spec.input("model")
    assert model is not None and model.type == "STRING" and model.default == ""
    assert model.options_from and model.options_from.startswith("models:")
    assert spec.model_kind in model.options_from.removeprefix("models:").split(",")
    assert model.choices is None  # open: a graph may name a model installed later


def test_only_model_inputs_and_image_paths_have_open_options() -> None:
    found = {f"{s.type}.{i.name}": i.options_from for s in SPECS for i in s.inputs
             if i.options_from}
    assert found["image.Load.path"] == "input_images"
    assert found["image.TextToImage.model"] == "models:diffusion"
    assert found["image.Inpaint.model"] == "models:inpaint,diffusion"
    assert found["llm.Chat.model"] == "models:llm"
    assert found["embed.Text.model"] == "models:embedding"
    assert all(key.endswith(".model") or key == "image.Load.path" for key in found)


# -- the SDK ------------------------------------------------------------------------------

def test_a_display_name_is_made_from_the_type_id_in_words() -> None:
    @node("demo.ImageToVideoOfTheDay")
    class Made(Node):
        """Made up."""

        class Outputs(NodeOutputs):
            value: int

    assert Made.__node_def__.spec.display_name == "Image to Video of the Day"


def test_a_docstring_becomes_a_description_with_its_wrapped_lines_joined() -> None:
    @node("demo.Wrapped")
    class Wrapped(Node):
        """First sentence that is
        wrapped in the source.

        Details, also
        wrapped.
        """

        class Outputs(NodeOutputs):
            value: int

    assert Wrapped.__node_def__.spec.description == (
        "First sentence that is wrapped in the source.\n\nDetails, also wrapped.")


def test_options_from_is_declared_with_a_known_source_and_never_with_choices() -> None:
    assert Input("", options_from="models:diffusion")
    assert Input("", options_from="models:inpaint,diffusion", suggestions=["classic"])
    for bad in ("models:", "models:Diffusion", "files", "models:a;b"):
        with pytest.raises(ValueError, match="options_from"):
            Input("", options_from=bad)
    with pytest.raises(ValueError, match="not both"):
        Input("a", choices=["a"], options_from="models:llm")
    with pytest.raises(ValueError, match="suggestions"):
        Input("a", suggestions=["a"])


# -- /object_info ---------------------------------------------------------------------

def entry(info: dict, name: str) -> list:
    return info["input"]["required"][name]


def test_model_inputs_list_the_installed_models_of_their_kind(
        model_store: ModelStore, test_pack: list[str], tmp_path: Path) -> None:
    infos = object_infos(SPECS, model_store, tmp_path)
    ids = {kind: [m.id for m in model_store.list(kind)] for kind in
           ("diffusion", "inpaint", "upscaler", "video", "llm", "embedding")}
    choices, widget = entry(infos["image.TextToImage"], "model")
    assert choices == ["", *ids["diffusion"]] and "test-sd-tiny" in choices
    assert widget["default"] == "" and widget["tooltip"]
    assert "image_upload" not in widget
    assert entry(infos["image.Inpaint"], "model")[0] == ["", *ids["inpaint"], *ids["diffusion"]]
    assert entry(infos["image.Upscale"], "model")[0] == ["", "lanczos", *ids["upscaler"]]
    assert entry(infos["image.Outpaint"], "model")[0][:2] == ["", "classic"]
    assert entry(infos["video.ImageToVideo"], "model")[0] == ["", *ids["video"]]
    assert SMOLLM2 in entry(infos["llm.Chat"], "model")[0]
    assert MINILM in entry(infos["embed.Text"], "model")[0]
    # The remote provider's model is whatever the provider serves: a text box.
    assert entry(infos["llm.ChatRemote"], "model")[0] == "STRING"


def test_each_option_list_is_computed_once_per_request(model_store: ModelStore,
                                                       tmp_path: Path) -> None:
    options = input_options(SPECS, model_store, tmp_path)
    assert set(options) == {i.options_from for s in SPECS for i in s.inputs if i.options_from}
    assert options["input_images"] == []


def test_image_load_lists_the_input_pictures_and_asks_for_an_upload_button(
        input_dir: Path, model_store: ModelStore) -> None:
    Image.new("RGB", (4, 4)).save(input_dir / "b.png")
    Image.new("RGB", (4, 4)).save(input_dir / "a.JPG")
    (input_dir / "notes.txt").write_text("not a picture")
    (input_dir / ".hidden.png").write_bytes(b"")
    (input_dir / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(input_dir / "sub" / "c.webp")
    root = input_dir.parent
    prefix = input_dir.name
    listed = [p for p in input_images(root) if p.startswith(prefix + "/")]
    assert listed == [f"{prefix}/a.JPG", f"{prefix}/b.png", f"{prefix}/sub/c.webp"]

    choices, widget = entry(object_infos([BY_TYPE["image.Load"]], model_store, root)[
        "image.Load"], "path")
    # ComfyUI's LoadImage shape: [files, {"image_upload": true}], no empty entry.
    assert widget["image_upload"] is True and "default" not in widget
    assert [c for c in choices if c.startswith(prefix + "/")] == listed and "" not in choices


def test_without_option_lists_open_inputs_stay_text_widgets() -> None:
    info = object_info(BY_TYPE["image.TextToImage"])
    assert entry(info, "model")[0] == "STRING"
    assert entry(info, "sampler")[0][0] == "default"  # closed choices are combos regardless


def test_numbers_of_sdk_nodes_without_bounds_are_shown_unbounded() -> None:
    @node("demo.Free")
    class Free(Node):
        """Takes any numbers."""

        count: int = Input(0)
        ratio: float = Input(0.5)

        class Outputs(NodeOutputs):
            value: int

    info = object_info(Free.__node_def__.spec)
    count, ratio = entry(info, "count")[1], entry(info, "ratio")[1]
    assert count["min"] < -2**53 and count["max"] > 2**53 and "step" not in count
    assert ratio["min"] < -1e300 and ratio["max"] > 1e300 and ratio["step"] == 0.001


def test_the_object_info_route_shows_installed_models_and_input_pictures(
        registry: Registry, test_pack: list[str], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from engine.executors.local import LocalExecutor
    from engine.settings import Settings
    from server.app import create_app

    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    (settings.home / "models").symlink_to(get_settings().models_dir)
    settings.input_dir.mkdir()
    Image.new("RGB", (4, 4)).save(settings.input_dir / "fox.png")
    executor = LocalExecutor(registry)
    try:
        with TestClient(create_app(settings, registry, executor)) as client:
            one = client.get("/object_info/image.TextToImage").json()["image.TextToImage"]
            assert "test-sd-tiny" in entry(one, "model")[0]
            choices, widget = entry(client.get("/object_info").json()["image.Load"], "path")
            assert choices == ["fox.png"] and widget["image_upload"] is True
    finally:
        executor.close()


# -- the engine does not hold graphs to the lists -----------------------------------------

UNLISTED = {
    "version": 1, "name": "unlisted",
    "nodes": {
        "picture": {"type": "image.Load", "inputs": {"path": "uploaded-later.png"}},
        "ask": {"type": "llm.Messages", "inputs": {"message": "hi"}},
        "reply": {"type": "llm.Chat", "inputs": {"messages": "${ask.messages}",
                                                 "model": "installed-later"}},
        "draw": {"type": "image.TextToImage", "inputs": {"prompt": "a fox",
                                                         "model": "installed-later"}},
        "bigger": {"type": "image.Upscale", "inputs": {"image": "${picture.image}",
                                                       "model": "installed-later"}},
    },
    "outputs": {"width": "${picture.width}", "text": "${reply.text}",
                "images": "${draw.images}", "big": "${bigger.image}"},
}


def test_a_graph_naming_an_unlisted_model_or_file_validates() -> None:
    assert validate_graph(graph_from_data(UNLISTED), LIBRARY) == []
    prompt = {"1": {"class_type": "image.Load", "inputs": {"path": "uploaded-later.png"}},
              "2": {"class_type": "image.Upscale",
                    "inputs": {"image": ["1", 0], "model": "installed-later"}},
              "3": {"class_type": "image.Save", "inputs": {"image": ["2", 0]}}}
    assert validate_graph(graph_from_comfy(prompt), LIBRARY) == []


@pytest.mark.parametrize("executor", ["local"], indirect=True)
@pytest.mark.parametrize(("output", "named"), [("width", "uploaded-later.png"),
                                               ("text", "installed-later")])
def test_an_unlisted_model_or_file_fails_only_when_the_node_runs(executor, output: str,
                                                                 named: str) -> None:
    result = executor.run(graph_from_data(UNLISTED), outputs=[output], timeout=60)
    assert result.status == "failed" and result.error is not None
    assert named in result.error.message
