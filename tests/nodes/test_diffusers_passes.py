"""How the diffusion backend draws a run's images: one pass per image (the CPU default,
exact whatever shares the run) or one shared batched pass (the GPU default, close to the
single-image pixels within a stated bound). Runs the test pack's tiny Stable Diffusion on
the CPU, whatever CPU it is: kernels picked by batch shape may round differently from
one machine to the next, so only the per-image mode is compared bit for bit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from engine.models.manifest import ModelManifest
from engine.models.store import ModelStore
from nodes.backends.diffusers_sd import DiffusersBackend
from nodes.testpack.install import TINY_SD

# The promise of shared passes, in levels of 255: what batch-shape rounding may move.
MEAN_BOUND, MAX_BOUND = 1.0, 8


def make_backend(store: ModelStore, **options: Any) -> DiffusersBackend:
    manifest = store.get(TINY_SD)
    manifest = ModelManifest.model_validate({**manifest.model_dump(),
                                             "options": {**manifest.options, **options}})
    return DiffusersBackend(manifest, store.weights(manifest), "cpu")


@pytest.fixture(scope="module")
def backends(model_store: ModelStore, test_pack: list[str]) -> Iterator[dict[str, Any]]:
    yield {"per_image": make_backend(model_store),
           "shared": make_backend(model_store, image_passes="shared")}


def call(seed: int, batch_size: int = 1, prompt: str = "a lighthouse at dusk",
         **fields: Any) -> dict[str, Any]:
    return {"prompt": prompt, "negative_prompt": "", "width": 80, "height": 64, "steps": 3,
            "cfg": 7.0, "seed": seed, "batch_size": batch_size, "sampler": "default",
            "scheduler": "normal", "preview": False, **fields}


def draw(backend: DiffusersBackend, *calls: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(results per call, progress updates as (call index, update))."""
    updates: list[Any] = []

    def emit(index: int | None, update: Any) -> bool:
        updates.append((index, update))
        return True

    return backend.text_to_image(list(calls), emit), updates


def levels(image: Any) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_a_cpu_host_draws_per_image_and_a_gpu_host_shares_passes(backends) -> None:
    assert backends["per_image"].passes == "per_image"
    assert backends["per_image"].group_limit("text_to_image", call(1)) == 1
    assert backends["shared"].group_limit("text_to_image", call(1)) > 1


def test_per_image_passes_give_each_image_its_single_seed_pixels_exactly(backends) -> None:
    backend = backends["per_image"]
    (batch,), updates = draw(backend, call(21, batch_size=3))
    assert batch["seeds"] == [21, 22, 23]
    for offset in range(3):
        (single,), _ = draw(backend, call(21 + offset))
        assert single["images"][0].tobytes() == batch["images"][offset].tobytes()
    # progress runs over all three images: 3 steps each
    assert [u["step"] for _, u in updates] == list(range(1, 10))
    assert {u["total"] for _, u in updates} == {9} and {i for i, _ in updates} == {0}


def test_shared_passes_stay_within_the_bound_of_the_single_images(backends) -> None:
    shared, alone = backends["shared"], backends["per_image"]
    results, updates = draw(shared, call(21, batch_size=2),
                            call(31, prompt="a red fox in the snow"))
    assert [r["seeds"] for r in results] == [[21, 22], [31]]
    assert [len(r["images"]) for r in results] == [2, 1]
    # one pipeline run: three steps, each reported to both calls
    assert [(i, u["step"]) for i, u in updates] == [(0, 1), (1, 1), (0, 2), (1, 2),
                                                    (0, 3), (1, 3)]
    pairs = [(results[0]["images"][1], call(22)),
             (results[1]["images"][0], call(31, prompt="a red fox in the snow"))]
    for image, single_call in pairs:
        (single,), _ = draw(alone, single_call)
        difference = np.abs(levels(image) - levels(single["images"][0]))
        assert difference.mean() < MEAN_BOUND and difference.max() < MAX_BOUND
    # the same run again gives the same pixels, bit for bit
    again, _ = draw(shared, call(21, batch_size=2), call(31, prompt="a red fox in the snow"))
    assert [i.tobytes() for r in again for i in r["images"]] == \
        [i.tobytes() for r in results for i in r["images"]]


def test_a_caller_that_leaves_stops_its_per_image_run(backends) -> None:
    from nodes.backends.diffusers_sd import AbandonedError

    steps: list[int] = []

    def emit(index: int | None, update: Any) -> bool:
        steps.append(update["step"])
        return update["step"] < 2

    with pytest.raises(AbandonedError):
        backends["per_image"].text_to_image([call(5, batch_size=2)], emit)
    assert steps == [1, 2]  # the second image was never started


def test_an_unknown_pass_mode_is_refused_naming_the_choices(model_store, test_pack) -> None:
    with pytest.raises(ValueError, match="per_image, shared"):
        make_backend(model_store, image_passes="sometimes")


def probe(weights: str) -> None:
    """Run in a subprocess: prints the largest difference between image 2 of a batch of 2
    and the single image of its seed, with per-image passes."""
    store = ModelStore(weights)
    backend = make_backend(store)
    (batch,), _ = draw(backend, call(21, batch_size=2))
    (single,), _ = draw(backend, call(22))
    print("max difference", int(np.abs(levels(batch["images"][1]) -
                                       levels(single["images"][0])).max()))


# What a machine without AVX-512 runs (the failing machine of issue 10 was such an AMD
# EPYC): torch's own kernels, MKL and oneDNN capped at AVX2, and a single thread.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}


def test_per_image_exactness_holds_on_avx2_kernels_whatever_this_cpu_is(
        model_store: ModelStore, test_pack: list[str]) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", "from tests.nodes.test_diffusers_passes import probe; "
                               f"probe({str(model_store.root)!r})"],
        cwd=root, env={**os.environ, **AVX2_ONLY}, capture_output=True, text=True,
        timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "max difference 0" in done.stdout.splitlines()
