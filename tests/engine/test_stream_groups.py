"""Concurrent streamed calls with the same settings share one backend run on the host."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from engine.models.host import Host
from engine.models.manifest import ModelManifest


class Painter:
    """A backend with a grouped method: every run records which prompts it served."""

    grouped = {"paint": 4}

    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        self.runs: list[list[str]] = []
        self.threads: set[str] = set()
        self.holding = threading.Event()
        self.release = threading.Event()

    def group_key(self, method: str, kwargs: dict[str, Any]) -> Any:
        return kwargs["size"]

    def paint(self, calls: list[dict[str, Any]], emit: Any) -> list[dict[str, Any]]:
        self.threads.add(threading.current_thread().name)
        if calls[0]["prompt"] == "hold":  # keeps the worker busy until released
            self.holding.set()
            self.release.wait(30)
        if any(c["prompt"] == "boom" for c in calls):
            raise RuntimeError("the brush broke")
        self.runs.append([c["prompt"] for c in calls])
        for step in (1, 2):
            emit(None, {"step": step, "total": 2})
        emit(0, {"first": True})
        return [{"picture": f"{c['prompt']}@{c['size']}x{c.get('batch_size', 1)}"}
                for c in calls]


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """make_host(backend class name, **manifest options): a started host, closed after."""
    made: list[Host] = []

    def make(backend: str = "Painter", **options: Any) -> Host:
        manifest = ModelManifest(id="painter", kind="diffusion", format="test", source="test",
                                 path=str(tmp_path), backend=f"{__name__}:{backend}",
                                 options={"batch_gather": 0, **options})
        made.append(Host(manifest, tmp_path, "cpu"))
        return made[-1]
    yield make
    for host in made:
        host.close()


@pytest.fixture
def host(make_host: Callable[..., Host]) -> Host:
    return make_host()


def _collect(host: Host, **kwargs: Any) -> list[Any]:
    return [item for batch in host.stream("paint", **kwargs) for item in batch]


def test_calls_that_wait_together_share_one_run(host: Host):
    prompts = ["fox", "cat", "owl"]
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(_collect, host, prompt="hold", size=32)
        assert host.backend.holding.wait(30)
        futures = [pool.submit(_collect, host, prompt=p, size=64) for p in prompts]
        while host.groups["paint"].waiting < 3:  # all three queued behind the busy worker
            threading.Event().wait(0.01)
        host.backend.release.set()
        results = [f.result(30) for f in futures]
        held.result(30)
    assert host.backend.runs[0] == ["hold"]
    assert len(host.backend.runs) == 2 and sorted(host.backend.runs[1]) == sorted(prompts)
    for prompt, items in zip(prompts, results, strict=True):
        assert [i["step"] for i in items if "step" in i] == [1, 2]  # every caller sees steps
        assert items[-1] == {"picture": f"{prompt}@64x1"}  # and gets its own result
    assert sum(1 for items in results for i in items if i.get("first")) == 1
    assert host.info().batches["paint"] == {"batches": 2, "items": 4}
    assert host.backend.threads == {t for t in host.backend.threads if t.startswith("model-")}


def test_calls_with_other_settings_or_too_many_items_run_apart(host: Host):
    calls = [{"prompt": "a", "size": 64}, {"prompt": "b", "size": 96},
             {"prompt": "c", "size": 64, "batch_size": 3}, {"prompt": "d", "size": 64,
                                                            "batch_size": 2}]
    with ThreadPoolExecutor(5) as pool:
        held = pool.submit(_collect, host, prompt="hold", size=32)
        assert host.backend.holding.wait(30)
        futures = []
        for call in calls:  # queued in this order behind the busy worker
            futures.append(pool.submit(_collect, host, **call))
            while host.groups["paint"].waiting < len(futures):
                threading.Event().wait(0.01)
        host.backend.release.set()
        results = [f.result(30) for f in futures]
        held.result(30)
    assert [r[-1]["picture"] for r in results] == ["a@64x1", "b@96x1", "c@64x3", "d@64x2"]
    # the oldest call's size leads; 1 + 3 items fit in 4, the 2 more do not; 96 never joins
    assert host.backend.runs[1:] == [["a", "c"], ["b"], ["d"]]


def test_a_failing_run_fails_every_call_in_it(host: Host):
    with ThreadPoolExecutor(3) as pool:
        held = pool.submit(_collect, host, prompt="hold", size=32)
        assert host.backend.holding.wait(30)
        futures = [pool.submit(_collect, host, prompt=p, size=64) for p in ("ok", "boom")]
        while host.groups["paint"].waiting < 2:
            threading.Event().wait(0.01)
        host.backend.release.set()
        held.result(30)
    for future in futures:
        with pytest.raises(RuntimeError, match="the brush broke"):
            future.result()
    assert _collect(host, prompt="after", size=64)[-1] == {"picture": "after@64x1"}


def test_positional_arguments_are_refused_for_grouped_methods(host: Host):
    from engine.models.host import ModelHostError

    with pytest.raises(ModelHostError, match="keyword arguments only"):
        host.stream("paint", "fox")


def test_with_batching_off_each_call_runs_alone(make_host: Callable[..., Host]):
    host = make_host(batching=False)
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(_collect, host, prompt="hold", size=32)
        assert host.backend.holding.wait(30)
        futures = [pool.submit(_collect, host, prompt=p, size=64) for p in ("a", "b")]
        while host.groups["paint"].waiting < 2:
            threading.Event().wait(0.01)
        host.backend.release.set()
        results = [f.result(30) for f in futures]
        held.result(30)
    assert [r[-1]["picture"] for r in results] == ["a@64x1", "b@64x1"]
    assert host.backend.runs == [["hold"], ["a"], ["b"]]


class BigPainter(Painter):
    """Caps a run at 2 items for big pictures."""

    def group_limit(self, method: str, kwargs: dict[str, Any]) -> int:
        return 2 if kwargs["size"] >= 128 else 4


def test_a_backend_limit_keeps_runs_of_big_pictures_small(make_host: Callable[..., Host]):
    host = make_host("BigPainter")
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(_collect, host, prompt="hold", size=32)
        assert host.backend.holding.wait(30)
        futures = []
        for prompt in ("a", "b", "c"):
            futures.append(pool.submit(_collect, host, prompt=prompt, size=128))
            while host.groups["paint"].waiting < len(futures):
                threading.Event().wait(0.01)
        host.backend.release.set()
        [f.result(30) for f in futures]
        held.result(30)
    assert host.backend.runs[1:] == [["a", "b"], ["c"]]


class Endless(Painter):
    """Paints until nobody wants the picture any more (at most 2,000 steps)."""

    def paint(self, calls: list[dict[str, Any]], emit: Any) -> list[dict[str, Any]]:
        for step in range(1, 2001 if calls[0]["prompt"] == "fox" else 3):
            if not emit(None, {"step": step}):
                self.runs.append([f"stopped at {step}"])
                raise RuntimeError("abandoned")
            threading.Event().wait(0.002)
        self.runs.append(["finished"])
        return [{"picture": "done"} for _ in calls]


def test_a_run_whose_callers_all_left_stops_early(make_host: Callable[..., Host]):
    host = make_host("Endless")
    stream = host.stream("paint", prompt="fox", size=64)
    assert next(stream)[0]["step"] >= 1
    stream.close()  # what a cancelled node does
    for _ in range(500):
        if host.backend.runs:
            break
        threading.Event().wait(0.01)
    after = _collect(host, prompt="next", size=64)  # the host is free again
    assert host.backend.runs[0][0].startswith("stopped at")
    assert after[-1] == {"picture": "done"}


class Asker(Painter):
    """Records what ``emit`` answers for each call of a shared run once the test has closed
    the first caller's stream."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked = threading.Event()
        self.answer = threading.Event()

    def paint(self, calls: list[dict[str, Any]], emit: Any) -> list[dict[str, Any]]:
        if calls[0]["prompt"] == "hold":
            return super().paint(calls, emit)
        emit(0, {"step": 1})
        self.asked.set()
        self.answer.wait(30)
        self.runs.append([emit(0, {"step": 2}), emit(1, {"step": 2}), emit(None, {})])
        return [{"picture": c["prompt"]} for c in calls]


def test_emit_answers_for_the_call_it_addresses(make_host: Callable[..., Host]):
    host = make_host("Asker")
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(_collect, host, prompt="hold", size=64)
        assert host.backend.holding.wait(30)
        first = host.stream("paint", prompt="a", size=64)
        second = pool.submit(_collect, host, prompt="b", size=64)
        while host.groups["paint"].waiting < 2:  # both queued behind the busy worker
            threading.Event().wait(0.01)
        host.backend.release.set()
        held.result(30)
        assert next(first) == [{"step": 1}] and host.backend.asked.wait(30)
        first.close()  # what a cancelled node does
        host.backend.answer.set()
        assert second.result(30)[-1] == {"picture": "b"}
    # the first caller has gone, the second still wants its picture, so the run does too
    assert host.backend.runs[1:] == [[False, True, True]]
