"""With HOMEPILOT_API_KEY set, every endpoint but /health needs the key."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from engine.executors.local import LocalExecutor
from engine.settings import Settings
from server.app import create_app


def client_with(registry, tmp_path, key: str) -> tuple[TestClient, LocalExecutor]:
    executor = LocalExecutor(registry)
    app = create_app(Settings(home=tmp_path / "home", api_key=key), registry, executor)
    return TestClient(app), executor


def test_without_a_key_configured_everything_is_open(registry, tmp_path):
    client, executor = client_with(registry, tmp_path, "")
    with client:
        assert client.get("/conversations").status_code == 200
    executor.close()


def test_with_a_key_only_health_is_open(registry, tmp_path):
    client, executor = client_with(registry, tmp_path, "s3cret-key")
    with client:
        assert client.get("/health").status_code == 200
        refused = client.get("/conversations")
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        assert client.get("/conversations", headers={"Authorization": "Bearer nope"}
                          ).status_code == 401
        assert client.get("/conversations", headers={"Authorization": "Bearer s3cret-key"}
                          ).status_code == 200
        assert client.get("/object_info", headers={"X-API-Key": "s3cret-key"}
                          ).status_code == 200
        assert client.post("/upload").status_code == 401
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/ws?clientId=a") as socket:
                socket.receive_text()
        with client.websocket_connect("/ws?clientId=a&api_key=s3cret-key") as socket:
            assert '"status"' in socket.receive_text()
    executor.close()
