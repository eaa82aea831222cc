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
