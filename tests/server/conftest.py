"""App fixtures: the real app over the test packs, with either executor."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from engine.executors.base import Executor
from engine.settings import Settings
from server.app import create_app


@pytest.fixture
def client_for(tmp_path, registry) -> Iterator[Callable[[Executor], TestClient]]:
    """client_for(executor) -> a started TestClient (lifespan on) over the test packs."""
    opened: list[TestClient] = []

    def make(executor: Executor) -> TestClient:
        settings = Settings(home=tmp_path / "home", graphs_dir=tmp_path / "graphs")
        client = TestClient(create_app(settings, registry, executor))
        client.__enter__()
        opened.append(client)
        return client
    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_for, executor) -> TestClient:
    return client_for(executor)


@pytest.fixture
def app(registry, tmp_path, executor) -> Iterator[TestClient]:
    """The app on the parametrized executor with a fresh home (database, files) whose
    model store is the test home's, over the shipped graphs."""
    from engine.settings import get_settings

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    with TestClient(create_app(Settings(home=home), registry, executor)) as client:
        yield client


@pytest.fixture
def media_app(registry, tmp_path, test_pack) -> Iterator[TestClient]:
    """The app on the LocalExecutor with a fresh home (database, files) whose model store
    is the test home's, test pack included."""
    from engine.executors.local import LocalExecutor
    from engine.files import FileStore
    from engine.settings import get_settings

    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    (settings.home / "models").symlink_to(get_settings().models_dir)
    # The executor writes results where this app serves them from.
    executor = LocalExecutor(registry, files=FileStore(settings.home / "files"))
    with TestClient(create_app(settings, registry, executor)) as client:
        yield client
    executor.close()


@pytest.fixture
def make_app(registry, tmp_path) -> Iterator[Callable[..., TestClient]]:
    """make_app(**settings) -> a started TestClient over a fresh home (LocalExecutor, saving
    files where the app serves them from; the test home's models)."""
    from engine.executors.local import LocalExecutor
    from engine.files import FileStore
    from engine.settings import get_settings

    opened: list[tuple[TestClient, LocalExecutor]] = []

    def make(**fields) -> TestClient:
        home = tmp_path / f"home{len(opened)}"
        home.mkdir()
        (home / "models").symlink_to(get_settings().models_dir)
        executor = LocalExecutor(registry, files=FileStore(home / "files"))
        client = TestClient(create_app(Settings(home=home, **fields), registry, executor))
        client.__enter__()
        opened.append((client, executor))
        return client
    yield make
    for client, executor in opened:
        client.__exit__(None, None, None)
        executor.close()
