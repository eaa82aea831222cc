"""The holes a security review found, each closed and tested: keys, files, outbound calls,
cross-site requests, incognito, auth, uploads, decoders, shared files, honest settings."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from engine.executors.local import LocalExecutor
from engine.settings import Settings
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


# -- 3. cross-site requests cannot run anything ------------------------------------------

PROMPT = {"1": {"class_type": "MyAdd", "inputs": {"a": 1, "b": 2}},
          "2": {"class_type": "MyFormat", "inputs": {"number": ["1", 0], "prefix": "n="}}}


def _comfy_runs(client: TestClient) -> int:
    return len(client.get("/history").json()) + len(client.get("/queue").json()[
        "queue_running"])


def test_a_text_plain_post_from_another_site_is_refused_and_runs_nothing(make_app):
    import json

    client = make_app()
    body = json.dumps({"prompt": PROMPT})
    refused = client.post("/prompt", content=body, headers={
        "Content-Type": "text/plain", "Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.json()["code"] == "cross_site_request"
    for headers in ({"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://testserver.evil.example"}):
        assert client.post("/prompt", content=body, headers={
            "Content-Type": "application/json", **headers}).status_code == 403
    assert client.post("/interrupt", headers={"Origin": "https://evil.example"}
                       ).status_code == 403
    # text/plain is refused from anyone: it is what a page can send without asking
    plain = client.post("/prompt", content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert _comfy_runs(client) == 0
    with pytest.raises(WebSocketDisconnect) as closed:  # nor listen to the run events
        with client.websocket_connect("/ws?clientId=a", headers={
                "Origin": "https://evil.example"}) as socket:
            socket.receive_text()
    assert closed.value.code == 4403


def test_this_servers_own_pages_configured_origins_and_scripts_still_work(make_app):
    import json

    client = make_app()
    body = json.dumps({"prompt": PROMPT})
    for headers in ({"Origin": "http://testserver", "Content-Type": "application/json"},
                    {"Origin": "http://localhost:5173", "Content-Type": "application/json"},
                    # ComfyUI's example script: urllib's default content type, no Origin
                    {"Content-Type": "application/x-www-form-urlencoded"}):
        accepted = client.post("/prompt", content=body, headers=headers)
        assert accepted.status_code == 200, (headers, accepted.text)
    # a browser that does not say where a form post comes from is refused
    assert client.post("/prompt", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Sec-Fetch-Mode": "navigate"}).status_code == 415
    # this server's own page (the editor) may send its JSON as text/plain
    assert client.post("/prompt", content=body, headers={
        "Content-Type": "text/plain;charset=UTF-8", "Origin": "http://testserver",
        "Sec-Fetch-Site": "same-origin"}).status_code == 200


# -- 5. the API key: every method, headers only on HTTP, credentials only for named origins

def test_options_and_url_keys_do_not_pass_the_key_check(make_app):
    client = make_app(api_key="s3cret-key")
    assert client.options("/conversations").status_code == 401
    assert client.options("/my_pack/hello").status_code == 401  # a pack's route
    assert client.get("/conversations", params={"api_key": "s3cret-key"}).status_code == 401
    # a CORS preflight from a configured origin is answered without the key ...
    preflight = client.options("/conversations", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    # ... and one from anywhere else gets no permission
    other = client.options("/conversations", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in other.headers


def test_a_wildcard_cors_origin_never_carries_credentials(make_app):
    client = make_app(cors_origins="*")
    reply = client.get("/health", headers={"Origin": "https://anywhere.example",
                                           "Cookie": "session=1"})
    assert reply.headers.get("access-control-allow-credentials") is None


# -- 8. a file two conversations show survives the deletion of one of them ----------------

def test_deleting_a_conversation_keeps_the_pictures_others_still_show(media_app):
    ask = {"message": "a quiet harbour", "mode": "imagine", "imgWidth": 64, "imgHeight": 64,
           "imgSteps": 2, "imgSeed": 77, "imgPreset": "custom"}

    def imagine() -> tuple[str, str]:
        out = media_app.post("/chat", json=ask).json()
        return out["conversation_id"], out["media"]["images"][0]

    first, picture = imagine()
    second, same = imagine()  # served from the engine's cache: the same stored file
    assert same == picture
    gone = media_app.delete(f"/conversations/{first}").json()
    assert gone["deleted_messages"] == 2 and gone["deleted_media_files"] == 0
    assert media_app.get(picture).status_code == 200
    assert media_app.get(f"/conversations/{second}/messages").json()["messages"][1][
        "media"]["images"] == [picture]
    gone = media_app.delete(f"/conversations/{second}").json()
    assert gone["deleted_media_files"] == 1 and media_app.get(picture).status_code == 404
    # the cache does not hand out the deleted file: the picture is drawn again
    _, again = imagine()
    assert again != picture and media_app.get(again).status_code == 200


# -- 4. incognito chats leave nothing behind -----------------------------------------------

def _rows(client: TestClient) -> int:
    (count,) = client.app.state.homepilot.db.read("SELECT count(*) FROM messages")[0]
    return count


def test_an_incognito_chat_stores_nothing(media_app):
    before = _rows(media_app)
    said = media_app.post("/chat", json={"message": "Say hi", "incognito": True,
                                         "textMaxTokens": 8}).json()
    streamed = media_app.post("/chat/stream", json={"message": "Say hi", "incognito": True,
                                                    "textMaxTokens": 8})
    assert streamed.status_code == 200 and '"done": true' in streamed.text
    drawn = media_app.post("/chat", json={
        "message": "a lantern", "mode": "imagine", "incognito": True, "imgWidth": 64,
        "imgHeight": 64, "imgSteps": 2, "imgSeed": 5, "imgPreset": "custom"}).json()
    picture = drawn["media"]["images"][0]
    assert said["text"] and media_app.get(picture).status_code == 200  # shown, for now
    assert _rows(media_app) == before
    assert media_app.get("/conversations").json()["conversations"] == []
    assert media_app.get(f"/conversations/{said['conversation_id']}/messages").json()[
        "messages"] == []
    # once its time is up, the sweep deletes the picture
    import time

    expiring = media_app.app.state.homepilot.expiring
    assert expiring.sweep(now=time.time() + 3601) == 1
    assert media_app.get(picture).status_code == 404


# -- 6. uploads stop at the cap while they stream in -------------------------------------

def _upload_headers(port: int, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else \
        "Transfer-Encoding: chunked"
    return (f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary=xyz\r\n{framing}\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _answer(sock) -> bytes:
    sock.settimeout(20)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_an_oversized_upload_is_refused_before_it_is_all_read(registry, tmp_path):
    import select
    import socket

    home = tmp_path / "home"
    executor = LocalExecutor(registry)
    app = create_app(Settings(home=home, max_upload_mb=1), registry, executor)
    try:
        with serving(app) as base:
            port = int(base.rsplit(":", 1)[1])
            # a declared length over the cap: refused before a byte of the body is sent
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(_upload_headers(port, 200 * 1024**2))
                assert _answer(sock).startswith(b"HTTP/1.1 413")
            # no declared length: the server stops reading at the cap
            sent, answered = 0, b""
            with socket.create_connection(("127.0.0.1", port)) as sock:
                part = (b'--xyz\r\nContent-Disposition: form-data; name="file"; '
                        b'filename="a.png"\r\n\r\n')
                sock.sendall(_upload_headers(port, None) + _chunk(part))
                chunk = _chunk(b"\0" * 256 * 1024)
                try:
                    while sent < 200 * 1024**2:
                        sock.sendall(chunk)
                        sent += 256 * 1024
                        if select.select([sock], [], [], 0)[0]:
                            break  # the server has answered
                except (BrokenPipeError, ConnectionResetError):
                    pass
                answered = _answer(sock)
        assert answered.startswith(b"HTTP/1.1 413")
        assert sent < 32 * 1024**2  # far from the 200 MB the client meant to send
        assert not (home / "files").exists() or not any((home / "files").iterdir())
    finally:
        executor.close()


# -- 9. settings that cannot be applied are reported, never echoed as applied ------------

def test_settings_a_mode_cannot_apply_are_reported_not_echoed(media_app):
    from tests.server.media import upload

    source = upload(media_app)
    animated = media_app.post("/chat", json={
        "message": f"animate {source} slow zoom", "vidSeconds": 1, "vidFps": 4,
        "vidWidth": 64, "vidHeight": 64, "vidSteps": 2, "vidDenoise": 0.3,
        "vidNegativePrompt": "blurry", "promptRefinement": True}).json()["media"]
    assert animated["denoise"] is None and animated["negative_prompt"] is None
    assert {i["field"] for i in animated["ignored"]} == {"vidDenoise", "vidNegativePrompt",
                                                         "promptRefinement"}
    ask = {"message": "a kite", "mode": "imagine", "imgWidth": 64, "imgHeight": 64,
           "imgSteps": 2, "imgSeed": 3, "imgPreset": "custom"}
    # Imagine refines the prompt (the local model here): applied, so not listed.
    drawn = media_app.post("/chat", json={**ask, "promptRefinement": True}).json()["media"]
    assert "ignored" not in drawn and drawn["refiner"].startswith("local:")
    plain = media_app.post("/chat", json={**ask, "promptRefinement": False,
                                          "provider": "ollama"}).json()["media"]
    assert plain["final_prompt"] == "a kite" and plain["refiner"] == "none"
    assert plain["ignored"] == [{"field": "provider", "reason": plain["ignored"][0]["reason"]}]
    assert "refinement is off" in plain["ignored"][0]["reason"]
    # an edit session's provider fields: edits use no chat provider
    session = "s-ignored"
    assert media_app.post(f"/v1/edit-sessions/{session}/image",
                          json={"image_url": source}).status_code == 200
    edited = media_app.post(f"/v1/edit-sessions/{session}/message", json={
        "message": "make it blue --steps 2", "provider": "ollama",
        "provider_base_url": "http://example.invalid"}).json()["raw"]["media"]
    assert {i["field"] for i in edited["ignored"]} == {"provider", "provider_base_url"}
