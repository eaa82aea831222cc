"""Shared fixtures: one Ray session per test run, registries and executors as factories."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests never touch the user's home: everything lives in a throwaway HOMEPILOT_HOME.
_HOME = tempfile.mkdtemp(prefix="homepilot-test-home-")
os.environ["HOMEPILOT_HOME"] = _HOME
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from engine.executors.base import Executor  # noqa: E402
from engine.graph import Graph  # noqa: E402
from engine.models.store import ModelStore  # noqa: E402
from engine.registry import Registry  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
PACKS = FIXTURES / "packs"


@pytest.fixture(scope="session", autouse=True)
def model_store() -> ModelStore:
    """The test home's model store, with the bundled models registered (no downloads)."""
    from engine.settings import get_settings
    from nodes.backends.bundled import register_bundled

    store = ModelStore(get_settings().models_dir)
    register_bundled(store)
    return store


@pytest.fixture(scope="session")
def test_pack(model_store: ModelStore) -> list[str]:
    """The test pack (tiny random-weight diffusion, inpainting, upscaler and video models)
    built once per run into the test home's model store."""
    from nodes.testpack.install import install_test_pack

    return install_test_pack(model_store)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole run (starting one costs seconds on 2 cores)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def registry() -> Registry:
    """Built-in nodes plus the test packs: engine test nodes, a classic and a V3 ComfyUI pack."""
    from nodes import build_registry

    return build_registry([str(PACKS)])


@pytest.fixture(scope="session")
def _executors() -> dict[str, Executor]:
    return {}


def session_executor(request: pytest.FixtureRequest, registry: Registry,
                     executors: dict[str, Executor], kind: str) -> Executor:
    """The test session's one executor of this kind, made on first use."""
    if kind not in executors:
        if kind == "ray":
            request.getfixturevalue("ray_session")
            from engine.executors.ray import RayExecutor
            executors[kind] = RayExecutor(registry, fuse=True)
        else:
            from engine.executors.local import LocalExecutor
            executors[kind] = LocalExecutor(registry)
    return executors[kind]


@pytest.fixture(params=["local", "ray"])
def executor(request: pytest.FixtureRequest, registry: Registry,
             _executors: dict[str, Executor]) -> Executor:
    """Each engine test runs against both executors, with an empty cache."""
    chosen = session_executor(request, registry, _executors, request.param)
    chosen.clear_cache()
    return chosen


@pytest.fixture
def make_graph() -> Callable[..., Graph]:
    """Build a graph from plain dicts: make_graph(nodes, outputs=..., inputs=...)."""

    def make(nodes: dict[str, Any], outputs: dict[str, str] | None = None,
             inputs: dict[str, Any] | None = None, name: str = "test") -> Graph:
        return Graph.model_validate({"name": name, "nodes": nodes, "outputs": outputs or {},
                                     "inputs": inputs or {}})
    return make


@pytest.fixture
def markers(tmp_path: Path) -> Callable[[], dict[str, int]]:
    """A folder nodes drop a file into per execution; returns counts per node id."""
    folder = tmp_path / "markers"

    def counts() -> dict[str, int]:
        found: dict[str, int] = {}
        if folder.is_dir():
            for entry in folder.iterdir():
                node_id = entry.name.split(".")[0]
                found[node_id] = found.get(node_id, 0) + 1
        return found
    counts.path = str(folder)  # type: ignore[attr-defined]
    return counts


@pytest.fixture
def input_dir() -> Iterator[Path]:
    """A fresh folder inside the test home's input folder: where nodes may read files
    from disk (image.Load refuses paths elsewhere)."""
    import shutil
    import uuid

    from engine.settings import get_settings

    folder = get_settings().input_dir / uuid.uuid4().hex
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def picture_host() -> Iterator[str]:
    """A picture host on 127.0.0.1 (see tests/picture_host.py); yields its base URL."""
    from tests.picture_host import serving

    with serving() as url:
        yield url
