"""Every example graph loads, validates and runs on the LocalExecutor with real nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from engine.compiler import validate_graph
from engine.executors.local import LocalExecutor
from engine.files import FileStore
from engine.loader import load_graph
from engine.registry import Registry
from engine.run import RunResult
from nodes import build_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "graphs" / "examples"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry()


@pytest.fixture
def executor(registry: Registry, file_store: FileStore) -> Iterator[LocalExecutor]:
    local = LocalExecutor(registry, max_workers=2, files=file_store)
    yield local
    local.close()


def run_example(executor: LocalExecutor, example: str, **inputs: object) -> RunResult:
    result = executor.run(load_graph(EXAMPLES / f"{example}.yaml"), inputs, timeout=60)
    assert result.status == "success", result.error
    return result


def test_there_are_examples_to_run() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} >= {
        "greeting", "arithmetic", "list_map", "thumbnail", "branches"}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_validates_cleanly(registry: Registry, path: Path) -> None:
    graph = load_graph(path)
    assert graph.description and graph.outputs
    assert validate_graph(graph, registry) == []


def test_greeting_fills_the_template_and_shows_the_message(executor: LocalExecutor) -> None:
    result = run_example(executor, "greeting", name="Ada")
    message = "Hello Ada! It is sunny at the lake."
    assert result.outputs == {"message": message, "shouted": message.upper(),
                              "length": len(message)}
    assert result.ui == {"show": {"text": [message]}}


def test_greeting_takes_template_values_as_a_json_input(executor: LocalExecutor) -> None:
    result = run_example(executor, "greeting", details={"weather": "windy", "place": "sea"})
    assert result.outputs["message"] == "Hello world! It is windy at sea."


def test_arithmetic_chain_agrees_with_its_formula(executor: LocalExecutor) -> None:
    result = run_example(executor, "arithmetic", x=2)
    assert result.outputs == {"square_plus_one": 5.0, "by_formula": 5.0, "agree": True,
                              "ratio": 0.4}


def test_arithmetic_clamps_negative_ratios_to_zero(executor: LocalExecutor) -> None:
    result = run_example(executor, "arithmetic", x=-3)
    assert result.outputs["ratio"] == 0.0 and result.outputs["square_plus_one"] == 10.0


def test_list_map_runs_the_multiply_once_per_item(executor: LocalExecutor) -> None:
    result = run_example(executor, "list_map", count=4, factor=0.5)
    assert result.outputs["scaled"] == [0.0, 0.5, 1.0, 1.5]
    assert result.outputs["total"] == 6.0
    labels = ["0 x 0.5 = 0.0", "1 x 0.5 = 0.5", "2 x 0.5 = 1.0", "3 x 0.5 = 1.5"]
    assert result.outputs["labels"] == labels
    assert result.ui == {"label": {"text": labels}}


def test_list_map_over_an_empty_range_gives_empty_lists(executor: LocalExecutor) -> None:
    result = run_example(executor, "list_map", count=0)
    assert result.outputs == {"scaled": [], "labels": [], "total": 0.0}


def test_thumbnail_saves_a_fitted_png_with_the_badge(executor: LocalExecutor,
                                                     file_store: FileStore) -> None:
    result = run_example(executor, "thumbnail", color="#ff0000", size=64)
    file_id = result.outputs["file_id"]
    assert (result.outputs["width"], result.outputs["height"]) == (64, 40)
    assert result.ui["save"]["images"] == [{"filename": file_id, "subfolder": "",
                                            "type": "output"}]
    with Image.open(file_store.path(file_id)) as saved:
        assert saved.format == "PNG" and saved.size == (64, 40)
        canvas = saved.convert("RGB").getpixel((50, 30))
        badge = saved.convert("RGB").getpixel((12, 12))
    assert canvas[0] > 240 and canvas[1] < 15 and canvas[2] < 15
    assert min(badge) > 240


def test_branches_join_two_counts_into_a_verdict(executor: LocalExecutor) -> None:
    result = run_example(executor, "branches")
    assert result.outputs["words"] == 9 and result.outputs["average"] == 3.89
    assert result.outputs["verdict"] == "short words"
    assert result.ui == {"summary": {"text": ["9 words, 3.89 letters each: short words"]}}
    long = run_example(executor, "branches", text="extraordinary vocabulary")
    assert long.outputs["verdict"] == "long words" and long.outputs["average"] == 11.5
