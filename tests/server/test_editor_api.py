"""The editor's server side: what ComfyUI's frontend calls under /editor/, with its shapes
(COMFY-FRONTEND.md), its storage (DuckDB, the user folder) and its protections."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.executors.local import LocalExecutor
from engine.settings import Settings
from server.app import create_app

API = "/editor/api"
JOBS_SCHEMA = json.loads((Path(__file__).parent / "jobs_schema.json").read_text())
# What the editor's fetches carry: its own origin, and no JSON content type.
FROM_EDITOR = {"origin": "http://testserver", "content-type": "text/plain;charset=UTF-8"}
ADD_TOTAL = {"1": {"class_type": "MyAdd", "inputs": {"a": 10, "b": 20}},
             "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}


@pytest.fixture
def editor(make_app):
    return make_app


def finished(client: TestClient, prompt_id: str) -> None:
    client.app.state.homepilot.runs.get(prompt_id).handle.result(60)


def png(color=(200, 10, 10), size=(8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


# -- the page ---------------------------------------------------------------------------

def test_the_editor_page_is_served_uncached_under_a_policy_that_keeps_it_on_this_machine(
        editor):
    client = editor()
    redirect = client.get("/editor?x=1", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "/editor/?x=1"
    page = client.get("/editor/")
    assert page.status_code == 200 and "<div id=\"vue-app\">" in page.text
    assert page.headers["cache-control"].startswith("no-store")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self' data: blob:" in policy
    assert "'sha256-" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    script = page.text.split('type="module" crossorigin src="./')[1].split('"')[0]
    asset = client.get(f"/editor/{script}")
    assert asset.status_code == 200 and asset.content.startswith(b"")
    assert asset.headers["content-type"].startswith("application/javascript")
    assert client.get("/editor/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/editor/assets/../../../pyproject.toml").status_code == 404


def test_the_boot_endpoints_answer_the_shapes_the_frontend_parses(editor):
    client = editor()
    assert client.get(f"{API}/users").json() == {"storage": "server", "migrated": True}
    assert client.get(f"{API}/i18n").json() == {}
    assert client.get(f"{API}/global_subgraphs").json() == {}
    assert client.get(f"{API}/workflow_templates").json() == {}
    assert client.get(f"{API}/features").json()["max_upload_size"] == 25 * 1024**2
    stats = client.get(f"{API}/system_stats").json()
    assert "--disable-api-nodes" in stats["system"]["argv"]
    assert "required_frontend_version" not in stats["system"]
    extensions = client.get(f"{API}/extensions").json()
    assert isinstance(extensions, list) and all(isinstance(u, str) for u in extensions)
    assert "/extensions/homepilot/homepilot.js" in extensions
    script = client.get("/editor/extensions/homepilot/homepilot.js")
    assert script.headers["content-type"].startswith("application/javascript")
    assert b"registerExtension" in script.content
    shim = client.get("/editor/extensions/core/textPreviewWidgets.js")
    assert shim.status_code == 200 and b"comfyAPI" in shim.content
    info = client.get(f"{API}/object_info").json()
    assert "text.Concat" in info and info == client.get("/object_info").json()


# -- settings ---------------------------------------------------------------------------

def test_settings_are_stored_per_user_and_an_empty_body_deletes_one(editor):
    client = editor()
    assert client.get(f"{API}/settings").json()[
        "Comfy.Notification.ShowVersionUpdates"] is False
    # The frontend posts JSON.stringify(value) with no content type (text/plain).
    saved = client.post(f"{API}/settings/Comfy.LinkRenderMode", content=b"2",
                        headers=FROM_EDITOR)
    assert saved.status_code == 200
    client.post(f"{API}/settings", json={"Comfy.Locale": "en", "Comfy.Zoom": 1.5})
    client.post(f"{API}/settings/Comfy.Graph", json={"a": [1, 2]},
                headers={"Comfy-User": "other"})
    settings = client.get(f"{API}/settings").json()
    assert settings["Comfy.LinkRenderMode"] == 2 and settings["Comfy.Zoom"] == 1.5
    assert "Comfy.Graph" not in settings
    assert client.get(f"{API}/settings/Comfy.Graph", headers={"Comfy-User": "other"}).json() \
        == {"a": [1, 2]}
    db = client.app.state.homepilot.db
    assert db.read("SELECT count(*) FROM editor_settings WHERE user_id = 'default'")[0][0] == 3
    assert client.post(f"{API}/settings/Comfy.Zoom", content=b"",
                       headers=FROM_EDITOR).status_code == 200
    assert "Comfy.Zoom" not in client.get(f"{API}/settings").json()
    assert client.get(f"{API}/settings/Comfy.Zoom").json() is None
    bad = client.post(f"{API}/settings", json=[1, 2])
    assert bad.status_code == 400
    assert client.get(f"{API}/settings", headers={"Comfy-User": "../x"}).status_code == 400


# -- user files -------------------------------------------------------------------------

def test_user_files_take_encoded_paths_and_follow_comfyuis_rules(editor):
    client = editor()
    home = client.app.state.homepilot.settings.user_dir / "default"
    raw = b'{"not": "a workflow"}'
    saved = client.post(f"{API}/userdata/notes%2Fa.json?overwrite=true&full_info=true",
                        content=raw, headers=FROM_EDITOR)
    assert saved.status_code == 200 and saved.json()["path"] == "notes/a.json"
    assert (home / "notes" / "a.json").read_bytes() == raw
    again = client.post(f"{API}/userdata/notes%2Fa.json?overwrite=false", content=b"{}",
                        headers=FROM_EDITOR)
    assert again.status_code == 409 and (home / "notes" / "a.json").read_bytes() == raw
    listed = client.get(f"{API}/userdata", params={"dir": "notes", "recurse": "true",
                                                   "full_info": "true"}).json()
    assert [e["path"] for e in listed] == ["a.json"] and listed[0]["size"] == len(raw)
    assert client.get(f"{API}/userdata/notes%2Fa.json").content == raw
    moved = client.post(f"{API}/userdata/notes%2Fa.json/move/notes%2Fsub%2Fb.json"
                        "?overwrite=false", headers=FROM_EDITOR)
    assert moved.status_code == 200 and moved.json() == "notes/sub/b.json"
    assert not (home / "notes" / "a.json").exists()
    assert (home / "notes" / "sub" / "b.json").read_bytes() == raw
    deleted = client.delete(f"{API}/userdata/notes%2Fsub%2Fb.json")
    assert deleted.status_code == 204 and not (home / "notes" / "sub" / "b.json").exists()
    assert client.delete(f"{API}/userdata/notes%2Fsub%2Fb.json").status_code == 404
    for bad in ("..%2Fescape.json", "notes%2F..%2F..%2Fescape.json"):
        assert client.post(f"{API}/userdata/{bad}", content=b"{}",
                           headers=FROM_EDITOR).status_code == 400
    assert not (home.parent / "escape.json").exists()
    assert client.get(f"{API}/userdata", params={"dir": "subgraphs"}).json() == []
    assert client.get(f"{API}/userdata/comfy.templates.json").json() == []
    assert client.get(f"{API}/userdata/user.css").status_code == 200


# -- jobs, view, upload -----------------------------------------------------------------

def test_jobs_validate_against_the_frontends_schema_and_cancel_answers_cancelled(editor):
    client = editor()
    ok = client.post(f"{API}/prompt", json={"prompt": ADD_TOTAL, "extra_data": {
        "extra_pnginfo": {"workflow": {"id": "wf-1", "nodes": []}}}}).json()["prompt_id"]
    finished(client, ok)
    failing = {"1": {"class_type": "MyAdd", "inputs": {"a": 1, "b": 2}},
               "2": {"class_type": "image.Load", "inputs": {"path": "missing.png"}},
               "3": {"class_type": "image.Save", "inputs": {"image": ["2", 0]}}}
    bad = client.post(f"{API}/prompt", json={"prompt": failing}).json()["prompt_id"]
    finished(client, bad)
    listed = client.get(f"{API}/jobs", params={"status": "completed,failed,cancelled",
                                               "limit": 64, "offset": 0}).json()
    jsonschema.validate(listed, JOBS_SCHEMA)
    jobs = {j["id"]: j for j in listed["jobs"]}
    assert jobs[ok]["status"] == "completed" and jobs[ok]["workflow_id"] == "wf-1"
    assert jobs[ok]["outputs_count"] == 2  # MyTotal shows text and number
    assert jobs[bad]["status"] == "failed"
    assert jobs[bad]["execution_error"]["node_id"] == "2"
    assert jobs[bad]["execution_error"]["node_type"] == "image.Load"
    assert listed["pagination"] == {"offset": 0, "limit": 64, "total": 2, "has_more": False}
    assert client.get(f"{API}/jobs", params={"status": "in_progress,pending"}).json()[
        "jobs"] == []
    page = client.get(f"{API}/jobs", params={"limit": 1}).json()
    jsonschema.validate(page, JOBS_SCHEMA)
    assert page["pagination"]["has_more"] is True and page["jobs"][0]["id"] == bad
    detail = client.get(f"{API}/jobs/{ok}").json()
    assert detail["outputs"] == {"2": {"text": ["TOTAL=30"], "number": [30]}}
    assert detail["workflow"]["prompt"] == ADD_TOTAL
    assert detail["execution_status"]["status_str"] == "success"
    assert client.post(f"{API}/jobs/{ok}/cancel").json() == {"cancelled": False}
    assert client.post(f"{API}/jobs/nope/cancel").status_code == 404
    assert client.post(f"{API}/jobs/cancel", json={"job_ids": [ok, "nope"]}).json() == {
        "cancelled": False}


def test_an_uploaded_picture_lands_in_the_input_folder_and_is_viewable(editor):
    client = editor()
    picture = png()
    first = client.post(f"{API}/upload/image", files={"image": ("cat.png", picture)},
                        data={"type": "input", "subfolder": ""})
    assert first.json() == {"name": "cat.png", "subfolder": "", "type": "input"}
    second = client.post(f"{API}/upload/image", files={"image": ("cat.png", png((1, 2, 3)))})
    assert second.json()["name"] == "cat (1).png"
    inputs = client.app.state.homepilot.settings.input_dir
    assert (inputs / "cat.png").read_bytes() == picture
    assert client.get("/editor/internal/files/input").json() == ["cat (1).png", "cat.png"]
    viewed = client.get(f"{API}/view", params={"filename": "cat.png", "type": "input"})
    assert viewed.status_code == 200 and viewed.content == picture
    assert client.post(f"{API}/upload/image", files={"image": ("x.png", b"not a picture")}
                       ).status_code == 415
    assert client.post(f"{API}/upload/image", files={"image": ("x.png", picture)},
                       data={"subfolder": "../.."}).status_code == 400
    assert client.get(f"{API}/view", params={"filename": "../homepilot.duckdb",
                                             "type": "input"}).status_code == 400
    assert client.get(f"{API}/view", params={"filename": "f_0", "type": "output"}
                      ).status_code == 404
    # A run's saved picture is viewable by the name the editor is told.
    prompt = {"1": {"class_type": "image.Solid", "inputs": {"width": 4, "height": 4,
                                                             "color": "#c80a0a"}},
              "2": {"class_type": "image.Save", "inputs": {"image": ["1", 0]}}}
    run = client.post(f"{API}/prompt", json={"prompt": prompt}).json()["prompt_id"]
    finished(client, run)
    shown = client.get(f"{API}/jobs/{run}").json()["preview_output"]
    assert shown["nodeId"] == "2" and shown["mediaType"] == "images"
    output = client.get(f"{API}/view", params={"filename": shown["filename"],
                                               "type": "output", "subfolder": ""})
    assert Image.open(io.BytesIO(output.content)).getpixel((0, 0)) == (200, 10, 10)


# -- the socket ---------------------------------------------------------------------------

def test_the_socket_answers_feature_flags_and_reports_progress_state_per_node(editor):
    client = editor()
    client_id = uuid.uuid4().hex
    with client.websocket_connect(f"/editor/ws?clientId={client_id}") as socket:
        assert json.loads(socket.receive_text())["data"]["sid"] == client_id
        socket.send_text(json.dumps({"type": "feature_flags", "data": {
            "supports_preview_metadata": True}}))
        assert json.loads(socket.receive_text())["type"] == "feature_flags"
        accepted = client.post(f"{API}/prompt", json={"prompt": ADD_TOTAL,
                                                      "client_id": client_id}).json()
        frames = []
        while not frames or frames[-1]["type"] not in ("execution_success",
                                                         "execution_error"):
            frames.append(json.loads(socket.receive_text()))
    states = [f["data"] for f in frames if f["type"] == "progress_state"]
    assert states and all(s["prompt_id"] == accepted["prompt_id"] for s in states)
    first_running = next(s for s in states if any(n["state"] == "running"
                                                  for n in s["nodes"].values()))
    assert first_running["nodes"]["1"]["state"] == "running"
    last = states[-1]["nodes"]
    assert {k: v["state"] for k, v in last.items()} == {"1": "finished", "2": "finished"}
    assert last["2"]["value"] == last["2"]["max"]
    assert set(last["1"]) >= {"value", "max", "state", "node_id", "prompt_id",
                              "display_node_id", "parent_node_id", "real_node_id"}
    kinds = [f["type"] for f in frames]
    # A node is highlighted (progress_state running) before its 'executing' arrives.
    assert kinds.index("progress_state") < kinds.index("executing")


def test_partial_execution_runs_only_what_the_targets_need(editor):
    client = editor()
    prompt = {**ADD_TOTAL,
              "3": {"class_type": "MyAdd", "inputs": {"a": 1, "b": 1}},
              "4": {"class_type": "MyTotal", "inputs": {"value": ["3", 0]}}}
    run = client.post(f"{API}/prompt", json={"prompt": prompt,
                                             "partial_execution_targets": ["4"]}).json()
    finished(client, run["prompt_id"])
    detail = client.get(f"{API}/jobs/{run['prompt_id']}").json()
    assert detail["outputs"] == {"4": {"text": ["TOTAL=2"], "number": [2]}}
    refused = client.post(f"{API}/prompt", json={"prompt": prompt,
                                                 "partial_execution_targets": ["9"]})
    assert refused.status_code == 400 and "node_errors" in refused.json()


# -- protections ---------------------------------------------------------------------------

def test_a_text_plain_post_from_another_origin_is_refused_and_runs_nothing(editor):
    client = editor()
    body = json.dumps({"prompt": ADD_TOTAL}).encode()
    for path in (f"{API}/prompt", "/api/prompt", "/prompt"):
        refused = client.post(path, content=body, headers={
            "content-type": "text/plain", "origin": "http://evil.example"})
        assert refused.status_code == 403
    refused = client.post(f"{API}/settings/Comfy.Zoom", content=b"3", headers={
        "content-type": "text/plain", "origin": "http://evil.example"})
    assert refused.status_code == 403
    assert client.app.state.homepilot.runs.records() == []
    assert "Comfy.Zoom" not in client.get(f"{API}/settings").json()
    # The same body from the editor's own page is taken.
    own = client.post(f"{API}/prompt", content=body, headers={
        "content-type": "text/plain;charset=UTF-8", "origin": "http://testserver"})
    assert own.status_code == 200


def test_with_an_api_key_the_editor_logs_in_once_and_works_through_a_cookie(editor):
    client = editor(api_key="s3cret-key")
    page = client.get("/editor/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/editor/login")
    assert client.get(f"{API}/settings").status_code == 401
    form = client.get(page.headers["location"])
    assert form.status_code == 200 and 'type="password"' in form.text
    wrong = client.post("/editor/login", data={"key": "guess", "next": "/editor/"},
                        headers={"origin": "http://testserver"}, follow_redirects=False)
    assert wrong.status_code == 401 and "homepilot_session" not in wrong.headers.get(
        "set-cookie", "")
    right = client.post("/editor/login", data={"key": "s3cret-key", "next": "https://evil/"},
                        headers={"origin": "http://testserver"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/editor/"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get(f"{API}/settings").status_code == 200  # the client keeps the cookie
    assert client.get("/editor/").status_code == 200
    with client.websocket_connect("/editor/ws?clientId=c1") as socket:
        assert json.loads(socket.receive_text())["type"] == "status"
    value = client.cookies.get("homepilot_session")
    client.cookies.clear()
    client.cookies.set("homepilot_session", value[:-2] + ("00" if value[-2:] != "00" else "11"))
    assert client.get(f"{API}/settings").status_code == 401


def test_a_packs_web_directory_is_listed_and_served_to_the_editor(tmp_path):
    from nodes import build_registry

    pack = tmp_path / "packs" / "shiny_pack"
    (pack / "js" / "sub").mkdir(parents=True)
    (pack / "__init__.py").write_text(
        "class Echo:\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n"
        "        return {'required': {'text': ('STRING', {})}}\n"
        "    RETURN_TYPES = ('STRING',)\n"
        "    FUNCTION = 'run'\n"
        "    def run(self, text):\n"
        "        return (text,)\n"
        "NODE_CLASS_MAPPINGS = {'ShinyEcho': Echo}\n"
        "WEB_DIRECTORY = './js'\n")
    (pack / "js" / "widget.js").write_text("export const shiny = 1;\n")
    (pack / "js" / "sub" / "more.js").write_text("export const more = 2;\n")
    registry = build_registry([str(tmp_path / "packs")])
    home = tmp_path / "home"
    executor = LocalExecutor(registry)
    with TestClient(create_app(Settings(home=home), registry, executor)) as client:
        listed = client.get(f"{API}/extensions").json()
        assert "/extensions/shiny_pack/widget.js" in listed
        assert "/extensions/shiny_pack/sub/more.js" in listed
        for base in ("/editor", ""):
            served = client.get(f"{base}/extensions/shiny_pack/sub/more.js")
            assert served.status_code == 200 and served.text == "export const more = 2;\n"
            assert served.headers["content-type"].startswith("application/javascript")
        assert client.get("/extensions/shiny_pack/../__init__.py").status_code == 404
        assert client.get("/editor/extensions/shiny_pack/%2e%2e/__init__.py").status_code == 404
    executor.close()


def test_the_mask_editor_saves_the_painted_alpha_over_the_original(editor):
    client = editor()
    client.post(f"{API}/upload/image", files={"image": ("photo.png", png((10, 20, 30)))})
    mask = Image.new("RGBA", (8, 6), (0, 0, 0, 255))
    mask.putpixel((0, 0), (0, 0, 0, 0))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    saved = client.post(f"{API}/upload/mask", files={"image": ("clipspace-mask.png",
                                                              buffer.getvalue())},
                        data={"original_ref": json.dumps({"filename": "photo.png",
                                                          "type": "input"})}).json()
    assert saved["type"] == "input"
    result = Image.open(client.app.state.homepilot.settings.input_dir / saved["name"])
    assert result.mode == "RGBA" and result.getpixel((0, 0)) == (10, 20, 30, 0)
    assert result.getpixel((3, 3)) == (10, 20, 30, 255)
    alpha = client.get(f"{API}/view", params={"filename": saved["name"], "type": "input",
                                              "channel": "a"})
    assert Image.open(io.BytesIO(alpha.content)).getpixel((0, 0))[3] == 0
    refused = client.post(f"{API}/upload/mask", files={"image": ("m.png", buffer.getvalue())},
                          data={"original_ref": json.dumps({"filename": "../x.png"})})
    assert refused.status_code == 400
