from __future__ import annotations

import json

import pytest

from engine.registry import Registry
from engine.spec import NodeSpec
from nodes import build_registry

STARTER_TYPES = {
    "primitive": ["String", "Int", "Float", "Boolean", "Json", "Show"],
    "text": ["Template", "Concat", "Split", "Join", "Regex", "JsonParse", "JsonFormat",
             "Length", "Case"],
    "math": ["Add", "Subtract", "Multiply", "Divide", "Power", "Min", "Max", "Clamp", "Round",
             "Expression", "Random"],
    "logic": ["Compare", "And", "Or", "Not", "Switch", "Select"],
    "lists": ["Range", "Length", "Get", "Slice", "Append", "Sum", "Sort"],
    "image": ["Load", "LoadUrl", "Save", "Resize", "Scale", "Crop", "Composite", "Convert",
              "ToMask", "Solid", "Info"],
}
ALL_STARTERS = sorted(f"{domain}.{name}" for domain, names in STARTER_TYPES.items()
                      for name in names)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry()


def test_build_registry_registers_every_starter_node(registry: Registry) -> None:
    import importlib

    # The types the starter modules define (model nodes such as image.TextToImage live in
    # their own modules).
    defined = sorted(value.__node_def__.spec.type
                     for domain in STARTER_TYPES
                     for value in vars(importlib.import_module(f"nodes.{domain}")).values()
                     if isinstance(value, type) and "__node_def__" in value.__dict__)
    assert defined == ALL_STARTERS
    assert set(ALL_STARTERS) <= set(registry.types())


def test_every_spec_dumps_to_json_and_reads_back(registry: Registry) -> None:
    schemas = json.loads(json.dumps(registry.schemas()))
    for type_id in ALL_STARTERS:
        spec = NodeSpec.model_validate(schemas[type_id])
        assert spec == registry.get(type_id).spec


@pytest.mark.parametrize("type_id", ALL_STARTERS)
def test_every_starter_node_is_described_in_its_domain(registry: Registry,
                                                       type_id: str) -> None:
    spec = registry.get(type_id).spec
    assert spec.description and spec.category.split("/")[0] == type_id.split(".")[0]
    assert spec.source == "builtin" and spec.outputs


def test_output_nodes_are_show_and_save(registry: Registry) -> None:
    assert [t for t in ALL_STARTERS if registry.get(t).spec.output_node] == [
        "image.Save", "primitive.Show"]


def test_ports_carry_the_types_their_annotations_declare(registry: Registry) -> None:
    def port(type_id: str, name: str) -> str:
        spec = registry.get(type_id).spec
        found = spec.input(name)
        if found is None:
            found = spec.outputs[spec.output_index(name)]
        return found.type

    assert port("image.Save", "image") == "IMAGE"
    assert port("image.Solid", "image") == "IMAGE"
    assert port("image.Composite", "mask") == "MASK"
    assert port("image.ToMask", "mask") == "MASK"
    assert port("text.Template", "values") == "JSON"
    assert port("text.Regex", "result") == "JSON"
    assert port("lists.Sum", "items") == "JSON"
    assert port("primitive.Show", "value") == "*"
