"""Providers, settings, models and detailed health: real checks, real listings."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient

from engine.executors.local import LocalExecutor
from engine.settings import Settings, get_settings
from server.app import create_app
from tests.serving import free_port, serving


def provider_stub() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "qwen-7b"}, {"id": "llama-8b"}]}

    @app.get("/garbled/v1/models")
    def garbled() -> Response:
        return Response("{not json", media_type="application/json")

    @app.get("/deep/v1/models")
    def deep() -> Response:  # deeper than Python's json can recurse
        return Response("[" * 100_000 + "]" * 100_000, media_type="application/json")
    return app


@pytest.fixture
def core(registry, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    with serving(provider_stub()) as stub:
        settings = Settings(home=home, llm_base_url=f"{stub}/v1")
        executor = LocalExecutor(registry)
        with TestClient(create_app(settings, registry, executor)) as client:
            yield client, stub
        executor.close()


def test_providers_and_settings_describe_this_server(core):
    client, stub = core
    providers = client.get("/providers").json()
    assert providers["default"] == "local" and "openai_compat" in providers["available"]
    assert providers["providers"]["local"]["default_model"] == "smollm2-135m-instruct"
    settings = client.get("/settings").json()
    assert settings["llm_base_url"] == f"{stub}/v1" and settings["max_upload_mb"] == 25


def test_models_lists_installed_and_remote_models(core):
    client, stub = core
    local = client.get("/models").json()
    assert {"smollm2-135m-instruct", "all-minilm-l6-v2"} <= set(local["models"])
    assert client.get("/models", params={"model_type": "embedding"}).json()["models"] == [
        "all-minilm-l6-v2"]
    remote = client.get("/models", params={"provider": "openai_compat"}).json()
    assert remote["models"] == ["qwen-7b", "llama-8b"] and remote["count"] == 2
    private = client.get("/models", params={"provider": "openai_compat",
                                            "base_url": f"http://127.0.0.1:{free_port()}/v1"})
    assert private.status_code == 400 and private.json()["code"] == "url_not_allowed"
    client.app.state.homepilot.settings.fetch_allow = "127.0.0.1"
    down = client.get("/models", params={"provider": "openai_compat",
                                         "base_url": f"http://127.0.0.1:{free_port()}/v1"})
    assert down.status_code == 502 and "openai_compat" in down.json()["message"]
    assert client.get("/models", params={"provider": "bogus"}).status_code == 400


def test_a_provider_answering_unreadable_json_is_its_fault_not_a_500(core):
    client, stub = core
    settings = client.app.state.homepilot.settings
    settings.fetch_allow = "127.0.0.1"
    for broken in ("garbled", "deep"):
        listed = client.get("/models", params={"provider": "openai_compat",
                                               "base_url": f"{stub}/{broken}/v1"})
        assert listed.status_code == 502 and listed.json()["code"] == "models_unavailable"
        # A key check only reads the answer for the account's name: the 200 accepted it.
        settings.llm_base_url = f"{stub}/{broken}/v1"
        checked = client.post("/settings/api-keys/test",
                              json={"provider": "openai_compat", "key": "sk-12345678"})
        assert checked.status_code == 200 and checked.json()["valid"] is True


def test_detailed_health_runs_real_checks(core):
    client, _ = core
    reply = client.get("/health/detailed")
    assert reply.status_code == 200
    services = reply.json()["services"]
    assert services["database"]["ok"] and services["database"]["fts"] is True
    assert services["files"]["ok"] and services["engine"]["executor"] == "local"
    assert services["models"]["installed"] >= 2 and services["llm"]["ok"] is True
    client.app.state.homepilot.db.close()  # break the database: the check must notice
    broken = client.get("/health/detailed")
    assert broken.status_code == 503 and broken.json()["services"]["database"]["ok"] is False
