"""API keys: encrypted at rest, masked on the wire, tested against a provider stand-in."""

from __future__ import annotations

import stat

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from engine.executors.local import LocalExecutor
from engine.settings import Settings
from server.app import create_app
from tests.serving import serving

KEY = "hf_abcdefghijklmnopqrstuvwxyz123456"


def fake_hub() -> FastAPI:
    """Answers whoami the way the hub does: a name for the good key, 401 otherwise."""
    app = FastAPI()

    @app.get("/api/whoami-v2")
    async def whoami(request: Request):
        if request.headers.get("authorization") == f"Bearer {KEY}":
            return {"name": "ann", "type": "user"}
        return JSONResponse({"error": "Invalid credentials"}, status_code=401)
    return app


@pytest.fixture
def keyed(registry, tmp_path):
    with serving(fake_hub()) as hub:
        settings = Settings(home=tmp_path / "home", huggingface_url=hub)
        executor = LocalExecutor(registry)
        with TestClient(create_app(settings, registry, executor)) as client:
            yield client, settings.home
        executor.close()


def test_a_saved_key_is_encrypted_and_only_shown_masked(keyed, monkeypatch):
    client, home = keyed
    monkeypatch.delenv("HF_TOKEN", raising=False)
    saved = client.post("/settings/api-keys", json={"provider": "huggingface", "key": KEY})
    assert saved.status_code == 200
    assert saved.json()["status"] == {"configured": True, "source": "stored",
                                      "masked": "hf_a****3456", "env_var": "HF_TOKEN"}
    listing = client.get("/settings/api-keys").json()
    assert listing["keys"]["huggingface"]["masked"] == "hf_a****3456"
    assert listing["keys"]["civitai"]["configured"] is False
    assert KEY not in saved.text + client.get("/settings/api-keys").text
    db = client.app.state.homepilot.db
    (sealed,) = db.read("SELECT ciphertext FROM api_keys WHERE provider = 'huggingface'")[0]
    assert KEY.encode() not in bytes(sealed)
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600
    database_bytes = (home / "homepilot.duckdb").read_bytes()
    assert KEY.encode() not in database_bytes


def test_testing_keys_asks_the_provider(keyed):
    client, _ = keyed
    good = client.post("/settings/api-keys/test", json={"provider": "huggingface", "key": KEY})
    assert good.json() == {"ok": True, "valid": True, "message": "huggingface accepted the key",
                           "username": "ann"}
    bad = client.post("/settings/api-keys/test", json={"provider": "huggingface",
                                                        "key": "hf_wrongwrongwrong"})
    assert bad.json()["valid"] is False and "rejected" in bad.json()["message"]
    client.post("/settings/api-keys", json={"provider": "huggingface", "key": KEY})
    stored = client.post("/settings/api-keys/test", json={"provider": "huggingface"})
    assert stored.json()["valid"] is True


def test_deleting_and_bad_input(keyed, monkeypatch):
    client, _ = keyed
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    client.post("/settings/api-keys", json={"provider": "civitai", "key": "civitai-key-123"})
    assert client.delete("/settings/api-keys/civitai").json()["deleted"] is True
    assert client.delete("/settings/api-keys/civitai").json() == {
        "ok": True, "deleted": False, "message": "API key for civitai was not set"}
    unknown = client.post("/settings/api-keys", json={"provider": "x", "key": "12345678"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_provider"
    assert client.post("/settings/api-keys", json={"provider": "civitai", "key": "a b"}
                       ).status_code == 422
    assert client.delete("/settings/api-keys/nope").status_code == 400
    assert client.get("/settings/api-keys").json()["keys"]["civitai"]["configured"] is False
