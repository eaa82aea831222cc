"""Text to image with the test pack's tiny Stable Diffusion, on both executors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def test_concurrent_requests_with_the_same_settings_share_a_pipeline_call(registry,
                                                                          test_pack):
    from concurrent.futures import ThreadPoolExecutor

    from engine.executors.local import LocalExecutor

    executor = LocalExecutor(registry, max_workers=8)
    try:
        solo, _ = imagine(executor, seed=40, prompt="a lighthouse 0")
        before = _text_to_image_batches(executor)
        executor.clear_cache()  # the first of the four repeats the solo run
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda i: imagine(executor, seed=40 + i,
                                                   prompt=f"a lighthouse {i}")[0], range(4)))
        after = _text_to_image_batches(executor)
    finally:
        executor.close()
    assert after["items"] - before["items"] == 4
    assert after["batches"] - before["batches"] < 4  # some of the four ran together
    assert [r.outputs["seeds"] for r in runs] == [[40], [41], [42], [43]]
    # Sharing a batch changes no picture beyond float rounding.
    batched = np.asarray(pixels(runs[0].outputs["files"][0])).astype(int)
    alone = np.asarray(pixels(solo.outputs["files"][0])).astype(int)
    assert np.abs(batched - alone).max() <= 2


def _text_to_image_batches(executor) -> dict[str, int]:
    (info,) = [i for i in executor.models().status() if i.id == TINY_SD]
    return info.batches["text_to_image"]


def test_a_sampler_can_be_chosen_and_previews_come_with_the_steps(executor, test_pack):
    euler, _ = imagine(executor, seed=5)
    dpm, events = imagine(executor, seed=5, sampler="dpmpp_2m", scheduler="karras",
                          preview=True)
    assert pixels(euler.outputs["files"][0]).tobytes() != \
        pixels(dpm.outputs["files"][0]).tobytes()
    previews = [e.data.get("preview") for e in events if e.type == "node_progress"]
    assert previews and all(p and p.startswith("data:image/jpeg;base64,") for p in previews)


def test_cancelling_a_run_stops_its_pipeline_on_the_host(executor, test_pack):
    import threading

    stepped = threading.Event()
    handle = executor.submit(IMAGINE, {"prompt": "a long one", "steps": 150, "width": 64,
                                       "height": 64, "seed": 1},
                             listener=lambda e: e.type == "node_progress" and stepped.set())
    assert stepped.wait(120)
    before = _host_batches(executor)
    handle.cancel()
    assert handle.wait(120) and handle.result(0).status == "cancelled"
    # The host is free for the next request once the cancelled pipeline has stopped; had
    # it run its 150 steps to the end, it would count as a finished batch.
    imagine(executor, steps=2, width=64, height=64, seed=2)
    after = _host_batches(executor)
    assert after["batches"] - before["batches"] == 1
    assert after["items"] - before["items"] == 1


def _host_batches(executor) -> dict[str, int]:
    (info,) = [i for i in executor.model_status() if i["id"] == TINY_SD]
    return info["batches"]["text_to_image"]
