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
    # progress counts the steps of both images: 3 each
    steps = [(e.data["value"], e.data["max"]) for e in events if e.type == "node_progress"]
    assert steps and steps[-1] == (6, 6)
    assert [value for value, _ in steps] == sorted(value for value, _ in steps)


def test_image_i_of_a_batch_is_bit_for_bit_the_single_image_seeded_s_plus_i(executor,
                                                                            test_pack):
    batch, _ = imagine(executor, seed=21, batch_size=3)
    for offset in (1, 2):
        single, _ = imagine(executor, seed=21 + offset)
        assert single.outputs["seeds"] == [21 + offset]
        assert pixels(single.outputs["files"][0]).tobytes() == \
            pixels(batch.outputs["files"][offset]).tobytes()


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


def test_concurrent_requests_draw_the_pixels_each_draws_alone(registry, test_pack):
    """On a CPU every image is its own pipeline pass: requests arriving together queue on
    the host, and none changes another's pixels (the shared passes of a GPU host are
    tested on the backend, tests/nodes/test_diffusers_passes.py)."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.executors.local import LocalExecutor

    executor = LocalExecutor(registry, max_workers=8)
    try:
        alone = [imagine(executor, seed=40 + i, prompt=f"a lighthouse {i}")[0]
                 for i in range(4)]
        before = _text_to_image_batches(executor)
        executor.clear_cache()  # drawn again, not served from the cache
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda i: imagine(executor, seed=40 + i,
                                                   prompt=f"a lighthouse {i}")[0], range(4)))
        after = _text_to_image_batches(executor)
    finally:
        executor.close()
    assert after["items"] - before["items"] == 4 and after["batches"] - before["batches"] == 4
    assert [r.outputs["seeds"] for r in runs] == [[40], [41], [42], [43]]
    for together, solo in zip(runs, alone, strict=True):
        assert pixels(together.outputs["files"][0]).tobytes() == \
            pixels(solo.outputs["files"][0]).tobytes()


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
    # 150 steps at 512x512 take seconds even for the tiny model: the cancel lands mid-way.
    handle = executor.submit(IMAGINE, {"prompt": "a long one", "steps": 150, "width": 512,
                                       "height": 512, "seed": 1},
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
