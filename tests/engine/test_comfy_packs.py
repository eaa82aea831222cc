"""ComfyUI custom node packs (classic and V3) loaded and run like built-in nodes."""

from __future__ import annotations

import logging

from engine.comfy.loader import pack_registry
from engine.loader import graph_from_data
from tests.conftest import FIXTURES


def test_both_pack_kinds_and_our_own_are_registered(registry):
    apis = {pack.name: pack.api for pack in registry.packs}
    assert apis == {"comfy_classic": "classic", "comfy_v3": "v3", "engine_nodes": "homepilot"}
    assert all(pack.ok for pack in registry.packs)
    add = registry.get("MyAdd").spec
    assert add.display_name == "My Add" and add.source == "custom_nodes.comfy_classic"
    assert [o.name for o in add.outputs] == ["sum"]
    fmt = registry.get("MyFormat").spec
    assert fmt.input("case").choices == ["keep", "upper"] and fmt.input("case").kind == "optional"
    assert fmt.input("number").link_only and fmt.output_node
    v3 = registry.get("V3Multiply").spec
    assert (v3.input("a").min, v3.input("a").max, v3.input("a").default) == (0, 100, 2)
    assert v3.api == "comfy_v3" and [o.name for o in v3.outputs] == ["product"]
    classic = next(p for p in registry.packs if p.name == "comfy_classic")
    assert classic.web_directory.endswith("packs/web")


def test_a_broken_pack_is_logged_and_skipped(caplog):
    with caplog.at_level(logging.ERROR, logger="homepilot.packs"):
        registry = pack_registry([str(FIXTURES / "packs_broken")])
    assert "FineNode" in registry
    broken = next(p for p in registry.packs if p.name == "broken_pack")
    assert not broken.ok and "a_module_that_is_not_installed" in broken.error
    assert any("IMPORT FAILED: broken_pack" in r.getMessage() for r in caplog.records)


def test_classic_nodes_run_from_our_yaml_format(executor, make_graph):
    graph = make_graph({"a": {"type": "MyAdd", "inputs": {"a": "${inputs.a}", "b": 20}},
                        "t": {"type": "MyTotal", "inputs": {"value": "${a.sum}"}}},
                       outputs={"text": "${t.text}"}, inputs={"a": {"type": "INT", "default": 10}})
    result = executor.run(graph, timeout=60)
    assert result.outputs == {"text": "TOTAL=30"}
    assert result.ui == {"t": {"text": ["TOTAL=30"], "number": [30]}}


def test_v3_nodes_run_from_the_comfy_api_format(executor):
    prompt = {"1": {"class_type": "V3Multiply", "inputs": {"a": 6, "b": 7}},
              "2": {"class_type": "V3Label", "inputs": {"value": ["1", 0], "prefix": "p="}}}
    result = executor.run(graph_from_data(prompt), timeout=60)
    assert result.status == "success", result.error
    assert result.ui == {"2": {"text": ["p=42"]}}


def test_an_output_list_maps_the_next_node_per_item(executor):
    prompt = {"1": {"class_type": "MyRange", "inputs": {"count": 3}},
              "2": {"class_type": "MyFormat", "inputs": {"number": ["1", 0], "prefix": "v=",
                                                         "case": "upper"}},
              "3": {"class_type": "MyJoin", "inputs": {"texts": ["2", 0], "separator": "|"}}}
    result = executor.run(graph_from_data(prompt), timeout=60)
    assert result.ui["2"]["text"] == ["V=1", "V=2", "V=3"]
    assert result.ui["2"]["node"] == ["2", "2", "2"]
    assert result.ui["3"] == {"text": ["V=1|V=2|V=3"]}


def test_is_changed_nan_reruns_and_a_value_caches(executor):
    def prompt(seed: int) -> dict:
        return {"1": {"class_type": "MyNoisy", "inputs": {"seed": seed}},
                "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}
    executor.run(graph_from_data(prompt(-1)), timeout=60)
    again = executor.run(graph_from_data(prompt(-1)), timeout=60)
    assert sorted(again.executed) == ["1", "2"]
    executor.run(graph_from_data(prompt(5)), timeout=60)
    same = executor.run(graph_from_data(prompt(5)), timeout=60)
    assert same.executed == [] and same.ui == {"2": {"text": ["TOTAL=5"], "number": [5]}}


def test_a_failing_pack_node_reports_its_exception(executor):
    prompt = {"1": {"class_type": "MyFail", "inputs": {"value": 3}},
              "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}
    result = executor.run(graph_from_data(prompt), timeout=60)
    assert result.status == "failed"
    assert (result.error.node_id, result.error.error_type) == ("1", "ValueError")
    assert result.error.message == "MyFail refuses 3"
