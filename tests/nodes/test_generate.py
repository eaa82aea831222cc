"""Text to image with the test pack's tiny Stable Diffusion, on both executors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.events import Event
from engine.files import FileStore
from engine.loader import load_graph
from engine.settings import get_settings
from nodes.testpack.install import TINY_SD

IMAGINE = load_graph(Path(__file__).resolve().parents[2] / "graphs" / "imagine.yaml")


def pixels(file_id: str) -> Image.Image:
    with Image.open(FileStore(get_settings().home / "files").path(file_id)) as image:
        image.load()
        return image.copy()


def imagine(executor, **inputs):
    events: list[Event] = []
    result = executor.run(IMAGINE, {"prompt": "a red fox in a green field", "steps": 3,
                                    "width": 80, "height": 64, **inputs},
                          listener=events.append, timeout=300)
    assert result.status == "success", result.error
    return result, events


def test_imagine_makes_pngs_of_the_requested_size(executor, test_pack):
    result, events = imagine(executor, seed=11, batch_size=2)
    files = result.outputs["files"]
    assert len(files) == 2 and all(f.endswith(".png") for f in files)
    assert [pixels(f).size for f in files] == [(80, 64), (80, 64)]
    assert result.outputs["seeds"] == [11, 12] and result.outputs["model"] == TINY_SD
    steps = [e.data["value"] for e in events if e.type == "node_progress"]
    assert steps and steps[-1] == 3


def test_the_reported_seed_reproduces_the_same_pixels(executor, test_pack):
    first, _ = imagine(executor)  # seed -1: a random one, reported
    seed = first.outputs["seed"]
    again, _ = imagine(executor, seed=seed)
    assert again.outputs["seed"] == seed
    assert pixels(first.outputs["files"][0]).tobytes() == \
        pixels(again.outputs["files"][0]).tobytes()
    other, _ = imagine(executor, seed=seed + 1)
    assert pixels(other.outputs["files"][0]).tobytes() != \
        pixels(first.outputs["files"][0]).tobytes()


def test_sizes_that_are_not_multiples_of_8_are_refused(executor, test_pack):
    from engine.errors import GraphValidationError
    with pytest.raises(GraphValidationError) as raised:
        executor.run(IMAGINE, {"prompt": "x", "width": 81}, timeout=60)
    assert any(i.kind == "custom_validation_failed" and i.input == "width"
               for i in raised.value.issues)
