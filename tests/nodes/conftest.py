"""Factories for node tests: run one node's ``NodeDef`` directly, with a real file store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.context import NodeContext
from engine.files import FileStore


@dataclass
class Ran:
    """One node execution: outputs by name, and the ui dict an output node showed."""

    outputs: dict[str, Any]
    ui: dict[str, Any] | None

    def __getitem__(self, name: str) -> Any:
        return self.outputs[name]


RunNode = Callable[..., Ran]


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "files")


@pytest.fixture
def run_node(file_store: FileStore) -> RunNode:
    """``run_node(NodeClass, **inputs)``: execute the node as the executors do."""

    def run(cls: type, **inputs: Any) -> Ran:
        definition = cls.__node_def__
        ctx = NodeContext("run", "n1", definition.spec.type, None, None, file_store)
        result = definition.execute(inputs, ctx)
        names = [output.name for output in definition.spec.outputs]
        return Ran(dict(zip(names, result.values, strict=True)), result.ui)

    return run


@pytest.fixture
def make_image() -> Callable[..., Image.Image]:
    """``make_image(width, height, color, mode="RGB")``: a solid test picture."""

    def make(width: int, height: int, color: Any, mode: str = "RGB") -> Image.Image:
        return Image.new(mode, (width, height), color)

    return make
