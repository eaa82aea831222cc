"""The holes a security review found, each closed and tested: keys, files, outbound calls,
cross-site requests, incognito, auth, uploads, decoders, shared files, honest settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from engine.executors.local import LocalExecutor
from engine.settings import Settings, get_settings
from server.app import create_app
from tests.serving import serving


def capturing_provider(seen: list[dict]) -> FastAPI:
    """An OpenAI-compatible model list that records who asked, with which headers."""
    app = FastAPI()

    @app.get("/v1/models")
    def models(request: Request) -> dict:
        seen.append({"auth": request.headers.get("authorization")})
        return {"object": "list", "data": [{"id": "m1"}]}
    return app


@pytest.fixture
def make_app(registry, tmp_path) -> Iterator:
    """make_app(**settings) -> a started TestClient over a fresh home."""
    opened: list[tuple[TestClient, LocalExecutor]] = []

    def make(**fields) -> TestClient:
        home = tmp_path / f"home{len(opened)}"
        home.mkdir()
        (home / "models").symlink_to(get_settings().models_dir)
        executor = LocalExecutor(registry)
        client = TestClient(create_app(Settings(home=home, **fields), registry, executor))
        client.__enter__()
        opened.append((client, executor))
        return client
    yield make
    for client, executor in opened:
        client.__exit__(None, None, None)
        executor.close()


# -- 1. stored keys go only to the provider's stored URL ------------------------------------

def test_a_stored_key_goes_only_to_the_configured_provider_url(make_app):
    configured_seen: list[dict] = []
    other_seen: list[dict] = []
    with serving(capturing_provider(configured_seen)) as configured, \
            serving(capturing_provider(other_seen)) as other:
        client = make_app(llm_base_url=f"{configured}/v1")
        assert client.post("/settings/api-keys", json={
            "provider": "openai_compat", "key": "sk-stored-secret"}).status_code == 200
        assert client.get("/models", params={"provider": "openai_compat"}).json()[
            "models"] == ["m1"]
        # A URL the caller picks: refused while private, and never given the key.
        refused = client.get("/models", params={"provider": "openai_compat",
                                                "base_url": f"{other}/v1"})
        assert refused.status_code == 400 and refused.json()["code"] == "url_not_allowed"
        assert other_seen == []
        client.app.state.homepilot.settings.fetch_allow = "127.0.0.1"
        listed = client.get("/models", params={"provider": "openai_compat",
                                               "base_url": f"{other}/v1"})
        assert listed.status_code == 200 and listed.json()["models"] == ["m1"]
    assert configured_seen == [{"auth": "Bearer sk-stored-secret"}]
    assert other_seen == [{"auth": None}]


# -- 2. graphs read only the readable folders and reach hosts only through the guard ------

SECRET_FILE_TEXT = "not for graphs"


@pytest.fixture
def secret_picture(tmp_path):
    """A real picture outside every folder nodes may read."""
    from PIL import Image

    path = tmp_path / "outside" / "secret.png"
    path.parent.mkdir()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path)
    return path


def test_a_posted_graph_cannot_read_the_servers_disk(make_app, secret_picture):
    client = make_app()
    graph = {"nodes": {"load": {"type": "image.Load", "inputs": {"path": str(secret_picture)}}},
             "outputs": {"width": "${load.width}"}}
    run = client.post("/runs", json={"graph": graph, "wait": True}).json()
    assert run["status"] == "failed" and run["outputs"] == {}
    assert "outside the folders nodes may read" in run["error"]["message"]
    prompt = {"1": {"class_type": "image.Load", "inputs": {"path": "/etc/hostname"}},
              "2": {"class_type": "image.Save", "inputs": {"image": ["1", 0]}}}
    accepted = client.post("/prompt", json={"prompt": prompt, "prompt_id": "p-disk"})
    assert accepted.status_code == 200
    client.get("/runs/p-disk/events")  # the event stream ends with the run
    run = client.get("/runs/p-disk").json()
    assert run["status"] == "failed"
    assert "outside the folders nodes may read" in run["error"]["message"]


def test_chat_with_a_private_provider_url_is_refused_before_any_call(make_app):
    seen: list[dict] = []
    with serving(capturing_provider(seen)) as private:
        client = make_app()
        before = client.get("/conversations").json()["conversations"]
        reply = client.post("/chat", json={"message": "hi", "provider": "openai_compat",
                                           "provider_base_url": f"{private}/v1",
                                           "provider_model": "m1"})
        after = client.get("/conversations").json()["conversations"]
    assert reply.status_code == 400 and reply.json()["code"] == "url_not_allowed"
    assert seen == [] and after == before
