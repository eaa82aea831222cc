"""Persona avatars and .hpersona packages: commit, export, preview, import, and hostile
packages that must change nothing."""

from __future__ import annotations

import base64
import io
import json
import random
import zipfile

import pytest
from PIL import Image

from engine.models.manifest import ModelManifest
from server.errors import ApiError
from server.services import archive, dependency
from tests.server import packages as pk


@pytest.fixture
def client(client_for, registry, _executors, request):
    """The app on the local executor: these endpoints are storage, not graphs."""
    from tests.conftest import session_executor

    return client_for(session_executor(request, registry, _executors, "local"))


LAYOUT = {"manifest.json", "blueprint/persona_agent.json", "blueprint/persona_appearance.json",
          "blueprint/agentic.json", "dependencies/tools.json", "dependencies/mcp_servers.json",
          "dependencies/a2a_agents.json", "dependencies/models.json", "dependencies/suite.json",
          "preview/card.json"}
REWRITTEN = ("selected_filename", "selected_thumb_filename", "sets")
# One tool this server has (when the personalities name any) and one it has not.
TOOLS = [*sorted(dependency.builtin_tools())[:1], "definitely_not_a_tool"]


def _upload(client, data: bytes) -> str:
    """Upload a picture; its store id."""
    answer = client.post("/upload", files={"file": ("p.png", data, "image/png")})
    assert answer.status_code == 201, answer.text
    return answer.json()["url"].rsplit("/files/", 1)[1]


def _persona(client, **appearance) -> dict:
    answer = client.post("/projects", json={
        "name": "Mira", "description": "A calm guide", "project_type": "persona",
        "persona_agent": {"label": "Mira", "role": "guide", "category": "wellness",
                          "allowed_tools": TOOLS,
                          "response_style": {"tone": "warm"}, "memory_mode": "adaptive"},
        "persona_appearance": {"style_preset": "portrait", "nsfwMode": False,
                               "avatar_settings": {"img_model": "avatar-model.safetensors",
                                                   "style_preset": "portrait"},
                               **appearance}})
    assert answer.status_code == 201, answer.text
    return answer.json()["project"]


def _install_models(client) -> None:
    store = client.app.state.homepilot.model_store
    for model_id, kind, fmt in (("avatar-model", "diffusion", "diffusers"),
                                ("tiny-chat", "llm", "gguf")):
        store.register(ModelManifest(id=model_id, kind=kind, format=fmt, source="local",
                                     path="weights", backend="tests:Nothing"))


def _thumb_ok(data: bytes) -> Image.Image:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.size == (256, 256)
    return image.convert("RGB")


def _file(client, relative: str) -> bytes:
    return (client.app.state.homepilot.files.root / relative).read_bytes()


# -- avatar commit ----------------------------------------------------------------------

def test_committing_a_store_file_copies_it_and_makes_a_centre_cropped_webp_thumbnail(client):
    source = pk.picture()
    file_id = _upload(client, source)
    project = _persona(client)
    answer = client.post(f"/projects/{project['id']}/persona/avatar/commit",
                         json={"source_filename": file_id})
    assert answer.status_code == 200, answer.text
    stem = file_id.rsplit(".", 1)[0]
    folder = f"projects/{project['id']}/persona/appearance"
    selected = answer.json()["selected"]
    assert selected["selected_filename"] == f"{folder}/avatar_{stem}.png"
    assert selected["selected_thumb_filename"] == f"{folder}/thumb_avatar_{stem}.webp"
    assert selected["style_preset"] == "portrait"  # merged, not replaced
    assert _file(client, selected["selected_filename"]) == source
    thumb = _thumb_ok(_file(client, selected["selected_thumb_filename"]))
    # The centre square (x 50..350) has no red band: its edges and corners are blue.
    for x, y in ((2, 128), (253, 128), (2, 2), (253, 253)):
        red, _, blue = thumb.getpixel((x, y))
        assert blue > 200 and red < 60, (x, y, thumb.getpixel((x, y)))
    assert thumb.getpixel((128, 128))[1] > 200  # the green dot stays in the middle
    stored = client.app.state.homepilot.db.read(
        "SELECT extra FROM projects WHERE id = ?", [project["id"]])[0][0]
    assert json.loads(stored)["persona_appearance"]["selected_filename"] == \
        selected["selected_filename"]
    served = client.get(f"/files/{selected['selected_thumb_filename']}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
    assert served.content == _file(client, selected["selected_thumb_filename"])


def test_committing_a_files_url_relative_or_on_this_host(client):
    first, second = pk.picture(300, 300), pk.picture(200, 500, "JPEG")
    ids = [_upload(client, first), _upload(client, second)]
    project = _persona(client)
    for url, expected in ((f"/files/{ids[0]}", first),
                          (f"http://testserver/files/{ids[1]}?x=1", second)):
        answer = client.post(f"/projects/{project['id']}/persona/avatar/commit",
                             json={"source_url": url})
        assert answer.status_code == 200, answer.text
        selected = answer.json()["project"]["persona_appearance"]
        assert _file(client, selected["selected_filename"]) == expected
        _thumb_ok(_file(client, selected["selected_thumb_filename"]))
    assert selected["selected_filename"].endswith(".jpg")
    # A committed avatar's own /files URL commits again (another persona reuses it).
    other = _persona(client)
    again = client.post(f"/projects/{other['id']}/persona/avatar/commit",
                        json={"source_url": f"/files/{selected['selected_filename']}"})
    assert again.status_code == 200, again.text


def test_auto_commits_the_picture_the_persona_selected(client):
    pictures = [pk.picture(300, 300), pk.picture(320, 240)]
    ids = [_upload(client, p) for p in pictures]
    project = _persona(client, sets=[{"set_id": "s1", "images": [
        {"id": "a", "url": f"/files/{ids[0]}"}, {"id": "b", "url": f"/files/{ids[1]}"}]}],
        selected={"set_id": "s1", "image_id": "b"})
    answer = client.post(f"/projects/{project['id']}/persona/avatar/commit",
                         json={"auto": True})
    assert answer.status_code == 200, answer.text
    assert _file(client, answer.json()["selected"]["selected_filename"]) == pictures[1]


def test_avatar_commit_refusals_write_nothing(client):
    state = client.app.state.homepilot
    file_id = _upload(client, pk.picture())
    text_id = state.files.save(b"just some text, not a picture", ".png")
    chat = client.post("/projects", json={"name": "Chat"}).json()["project"]
    persona = _persona(client, selected={"set_id": "s", "image_id": "gone"})
    before = pk.snapshot(client)
    url = f"/projects/{persona['id']}/persona/avatar/commit"
    cases = [
        ("/projects/nope/persona/avatar/commit", {"source_filename": file_id}, 404),
        (f"/projects/{chat['id']}/persona/avatar/commit", {"source_filename": file_id}, 400),
        (url, {}, 400),
        (url, {"auto": False}, 400),
        (url, {"source_url": f"http://example.com/files/{file_id}"}, 400),
        (url, {"source_url": f"ftp://testserver/files/{file_id}"}, 400),
        (url, {"source_url": "/comfy/view/x.png"}, 404),  # a view URL, no such file
        (url, {"source_filename": "f_00000000000000000000.png"}, 404),
        (url, {"source_filename": "../homepilot.duckdb"}, 404),
        (url, {"source_filename": "/etc/passwd"}, 404),
        (url, {"source_url": "/files/..%2Fhomepilot.duckdb"}, 404),
        (url, {"source_filename": text_id}, 400),
        (url, {"auto": True}, 404),
    ]
    for path, body, status in cases:
        answer = client.post(path, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["ok"] is False
    assert pk.snapshot(client) == before


# -- export ---------------------------------------------------------------------------

def _exported(client, project_id: str, mode: str = "blueprint") -> tuple[bytes, dict]:
    answer = client.get(f"/projects/{project_id}/persona/export", params={"mode": mode})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as package:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in package.infolist())
        files = {i.filename: package.read(i) for i in package.infolist()}
    return answer.content, files


def _committed_persona(client) -> tuple[dict, bytes]:
    _install_models(client)
    source = pk.picture()
    file_id = _upload(client, source)
    project = _persona(client, sets=[{"set_id": "s1", "images": [
        {"id": "a", "url": f"/files/{file_id}"}]}], selected={"set_id": "s1", "image_id": "a"},
        outfits=[{"id": "o1", "label": "Coat", "images": []}], persona_voice="alto")
    client.put(f"/projects/{project['id']}", json={"agentic": {
        "goal": "calm", "capabilities": ["generate_images", "web_search"],
        "tool_details": [{"id": "t1", "name": "hp.web.search", "description": "search"}],
        "a2a_agent_ids": ["chief-of-staff"], "tool_source": "all"}})
    answer = client.post(f"/projects/{project['id']}/persona/avatar/commit", json={"auto": True})
    assert answer.status_code == 200
    return answer.json()["project"], source


def test_export_writes_the_v2_layout_with_dependencies_from_what_is_installed(client):
    project, source = _committed_persona(client)
    stem = project["persona_appearance"]["selected_filename"].rsplit("/avatar_", 1)[1][:-4]
    # Another picture in the persona's folder: only a full export carries it.
    extra = client.app.state.homepilot.files.root / "projects" / project["id"] / "persona" \
        / "appearance" / "history_1.png"
    extra.write_bytes(pk.picture(64, 64))
    data, files = _exported(client, project["id"])
    assets = {f"assets/avatar_{stem}.png", f"assets/thumb_avatar_{stem}.webp"}
    assert set(files) == LAYOUT | assets
    assert files[f"assets/avatar_{stem}.png"] == source
    _thumb_ok(files[f"assets/thumb_avatar_{stem}.webp"])
    manifest = json.loads(files["manifest.json"])
    assert manifest["kind"] == "homepilot.persona" and manifest["schema_version"] == 2
    assert manifest["package_version"] == 2 and manifest["source_project_id"] == project["id"]
    assert manifest["contents"] == {
        "has_avatar": True, "has_outfits": True, "outfit_count": 1, "has_voice": True,
        "has_tool_dependencies": True, "has_mcp_servers": True, "has_a2a_agents": True,
        "has_model_requirements": True}
    assert manifest["capability_summary"]["mcp_servers_count"] == 1
    assert json.loads(files["blueprint/persona_agent.json"]) == project["persona_agent"]
    assert json.loads(files["blueprint/persona_appearance.json"]) == \
        project["persona_appearance"]
    models = json.loads(files["dependencies/models.json"])
    assert models["image_models"] == [{"filename": "avatar-model.safetensors",
                                       "architecture": "diffusers", "role": "primary_avatar",
                                       "required": True}]
    assert models["llm_hint"]["recommended"] == "tiny-chat"
    servers = json.loads(files["dependencies/mcp_servers.json"])["servers"]
    assert [(s["name"], s["default_port"], s["tools_provided"]) for s in servers] == \
        [("hp-web-search", 9105, ["hp.web.search"])]
    agents = json.loads(files["dependencies/a2a_agents.json"])["agents"]
    assert [(a["name"], a["default_port"]) for a in agents] == [("chief-of-staff", 9202)]
    tools = json.loads(files["dependencies/tools.json"])
    assert tools["personality_tools"]["tools"] == TOOLS
    assert [t["name"] for t in tools["tool_schemas"]] == TOOLS[:-1]
    assert tools["capability_summary"] == {"required": ["generate_images"],
                                           "optional": ["web_search"]}
    card = json.loads(files["preview/card.json"])
    assert (card["name"], card["role"], card["tone"], card["has_avatar"]) == \
        ("Mira", "guide", "warm", True)
    _, full = _exported(client, project["id"], "full")
    # POST /projects copied the set's picture into the persona's folder too.
    copied = project["persona_appearance"]["sets"][0]["images"][0]["url"].rsplit("/", 1)[1]
    assert set(full) == LAYOUT | assets | {"assets/history_1.png", f"assets/{copied}"}


def test_export_commits_a_picked_avatar_first(client):
    source = pk.picture(300, 300)
    file_id = _upload(client, source)
    project = _persona(client, sets=[{"set_id": "s", "images": [
        {"id": "a", "url": f"http://testserver/files/{file_id}"}]}],
        selected={"set_id": "s", "image_id": "a"})
    _, files = _exported(client, project["id"])
    stem = file_id.rsplit(".", 1)[0]
    assert files[f"assets/avatar_{stem}.png"] == source
    _thumb_ok(files[f"assets/thumb_avatar_{stem}.webp"])
    assert json.loads(files["manifest.json"])["contents"]["has_avatar"] is True
    stored = client.get(f"/projects/{project['id']}").json()["project"]["persona_appearance"]
    assert stored["selected_filename"].endswith(f"/avatar_{stem}.png")
    # A picked picture that is gone: the export goes on without an avatar.
    gone = _persona(client, selected={"set_id": "s", "image_id": "nope"})
    _, files = _exported(client, gone["id"])
    assert not [n for n in files if n.startswith("assets/")]


def test_export_filename_is_safe_and_refusals_are_4xx(client):
    project = _persona(client)
    client.put(f"/projects/{project['id']}", json={"name": 'Ada "x"/../é; rm'})
    answer = client.get(f"/projects/{project['id']}/persona/export")
    assert answer.headers["content-disposition"] == 'attachment; filename="Adaxrm.hpersona"'
    chat = client.post("/projects", json={"name": "Chat"}).json()["project"]
    assert client.get("/projects/nope/persona/export").status_code == 404
    refused = client.get(f"/projects/{chat['id']}/persona/export")
    assert refused.status_code == 400 and refused.json()["message"] == "Not a persona project"
    assert client.get(f"/projects/{project['id']}/persona/export",
                      params={"mode": "everything"}).status_code == 422


# -- round trip -----------------------------------------------------------------------

def _post(client, path: str, data: bytes):
    return client.post(path, files={"file": ("x.hpersona", data, "application/zip")})


def test_export_then_import_gives_an_equal_persona(client):
    project, source = _committed_persona(client)
    data, files = _exported(client, project["id"])
    rows = len(pk.snapshot(client)[1])

    preview = _post(client, "/persona/import/preview", data)
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    imported = _post(client, "/persona/import", data)
    assert imported.status_code == 201, imported.text
    copy = imported.json()["project"]
    assert len(pk.snapshot(client)[1]) == rows + 1
    assert copy["id"] != project["id"] and copy["project_type"] == "persona"
    assert copy["name"] == "Mira" and copy["description"] == "A calm guide"
    assert copy["persona_agent"] == project["persona_agent"] == shown["persona_agent"]
    assert copy["agentic"] == project["agentic"] | {"tool_ids": ["t1"]}
    strip = lambda a: {k: v for k, v in a.items() if k not in REWRITTEN}  # noqa: E731
    assert strip(copy["persona_appearance"]) == strip(project["persona_appearance"])
    assert copy["persona_appearance"]["sets"] == []

    new, old = copy["persona_appearance"], project["persona_appearance"]
    folder = f"projects/{copy['id']}/persona/appearance/"
    for key in ("selected_filename", "selected_thumb_filename"):
        assert new[key] == folder + old[key].rsplit("/", 1)[1]
        assert _file(client, new[key]) == _file(client, old[key])
    pixels = [Image.open(io.BytesIO(_file(client, p["persona_appearance"]["selected_filename"])))
              for p in (project, copy)]
    assert pixels[0].tobytes() == pixels[1].tobytes() == Image.open(
        io.BytesIO(source)).tobytes()

    _, again = _exported(client, copy["id"])
    for name in LAYOUT - {"manifest.json", "blueprint/persona_appearance.json"}:
        if name.startswith("dependencies/"):
            assert json.loads(again[name]) == json.loads(files[name]), name

    # The preview shows what the import made, and checks against what is installed.
    assert shown["manifest"] == json.loads(files["manifest.json"])
    assert shown["persona_appearance"] == project["persona_appearance"]
    assert shown["dependencies"] == {n: json.loads(files[f"dependencies/{n}.json"])
                                     for n in ("tools", "mcp_servers", "a2a_agents", "models",
                                               "suite")}
    assert shown["has_avatar"] is True
    assert shown["asset_names"] == sorted(n[len("assets/"):] for n in files
                                          if n.startswith("assets/"))
    prefix = "data:image/webp;base64,"
    assert shown["avatar_preview_data_url"].startswith(prefix)
    _thumb_ok(base64.b64decode(shown["avatar_preview_data_url"][len(prefix):]))
    check = shown["dependency_check"]
    assert [(d["name"], d["status"]) for d in check["models"]] == \
        [("avatar-model.safetensors", "available"), ("tiny-chat", "available")]
    assert [(d["name"], d["status"], d["source_type"]) for d in check["tools"]] == \
        [(t, "available", "builtin") for t in TOOLS[:-1]] + \
        [("definitely_not_a_tool", "missing", "builtin"), ("hp.web.search", "missing", "forge")]
    assert [(d["name"], d["status"], d["port"]) for d in check["mcp_servers"]] == \
        [("hp-web-search", "missing", 9105)]
    assert [d["name"] for d in check["a2a_agents"]] == ["chief-of-staff"]
    assert check["all_satisfied"] is True  # tools, servers and agents are optional


def test_dependency_check_reports_missing_and_fallback_models(client):
    store = client.app.state.homepilot.model_store
    deps = {"models": {"image_models": [{"filename": "sdxl.safetensors", "required": True}],
                       "llm_hint": {"recommended": "llama3:8b"}},
            "tools": {"personality_tools": {"tools": sorted(dependency.builtin_tools())[:1]}}}
    missing = dependency.check(deps, store)
    assert [(d.status, d.required) for d in missing.models] == [("missing", True)] * 2
    assert missing.all_satisfied is False and "sdxl.safetensors" in missing.summary
    assert all(d.status == "available" for d in missing.tools)
    _install_models(client)
    degraded = dependency.check(deps, store)
    assert [(d.status, d.fallback) for d in degraded.models] == \
        [("degraded", "avatar-model"), ("degraded", "tiny-chat")]
    assert degraded.all_satisfied is False


def test_a_v1_package_imports_and_gets_a_thumbnail(client):
    avatar = pk.picture(300, 300)
    data = pk.package(pk.minimal(**{"assets/avatar_me.png": avatar}))
    answer = _post(client, "/persona/import", data)
    assert answer.status_code == 201, answer.text
    project = answer.json()["project"]
    appearance = project["persona_appearance"]
    assert project["name"] == "Mira" and project["description"] == "Persona"
    assert _file(client, appearance["selected_filename"]) == avatar
    assert appearance["selected_thumb_filename"].endswith("/thumb_avatar_me.webp")
    _thumb_ok(_file(client, appearance["selected_thumb_filename"]))
    assert appearance["avatar_settings"]["img_model"] == ""
    assert "agentic" not in project


# -- hostile packages -------------------------------------------------------------------

def _hostile() -> dict[str, bytes]:
    png = pk.picture(64, 64)
    manifest = dict(pk.MANIFEST)
    bomb = pk.zeros_entry("assets/avatar_bomb.png", 64 * 1024**2)
    sparse = pk.sparse(15 * 1024**2)
    return {
        "empty": b"",
        "not a zip": b"%PDF-1.7 this is not a zip at all" * 10,
        "truncated zip": pk.package(pk.minimal())[:-30],
        "missing manifest": pk.package({"blueprint/persona_agent.json": {"label": "x"}}),
        "manifest not json": pk.package(pk.minimal(**{"manifest.json": "{kind: nope"})),
        "manifest a list": pk.package(pk.minimal(**{"manifest.json": "[1, 2]"})),
        "wrong kind": pk.package(pk.minimal(**{"manifest.json": manifest | {
            "kind": "homepilot.project"}})),
        "schema 4": pk.package(pk.minimal(**{"manifest.json": manifest | {
            "schema_version": 4}})),
        "schema not a number": pk.package(pk.minimal(**{"manifest.json": manifest | {
            "schema_version": "two"}})),
        "no persona_agent": pk.package({"manifest.json": manifest}),
        "zip slip": pk.with_entry("assets/../../../evil.png", png),
        "zip slip at top": pk.with_entry("../evil.png", png),
        "absolute path": pk.with_entry("/tmp/evil.png", png),
        "drive path": pk.with_entry("C:/evil.png", png),
        "backslash path": pk.with_entry("assets\\..\\evil.png", png),
        "symlink": pk.with_entry("assets/avatar_link.png", b"/etc/passwd", mode=pk.SYMLINK),
        "symlink outside assets": pk.with_entry("link", b"/", mode=pk.SYMLINK),
        "bomb (ratio, caught while streaming)": pk.zeros_entry("assets/avatar_z.png",
                                                               8 * 1024**2),
        "bomb (per-file size)": bomb,
        "bomb with forged small sizes": pk.forge_size(bomb, "assets/avatar_bomb.png", 100),
        "oversize json": pk.package(pk.minimal(**{"blueprint/agentic.json": {
            "notes": random.Random(1).randbytes(600_000).hex()}})),
        "oversize total": pk.package(pk.minimal(**{
            f"preview/extra_{i}.bin": sparse for i in range(5)})),
        "non-image asset": pk.with_entry("assets/avatar_x.png", b"MZ\x90\x00" + b"\x00" * 200),
        "image named like text": pk.with_entry("assets/avatar_x.txt", png),
        "nested asset": pk.with_entry("assets/sub/avatar_x.png", png),
        "png posing as thumbnail": pk.with_entry("assets/thumb_avatar_x.webp", png),
        "pixel bomb": pk.with_entry("assets/avatar_huge.png", pk.huge_png()),
        "duplicate entries": _duplicate(),
        "too many entries": pk.package(pk.minimal(**{f"x/{i}": "" for i in range(300)})),
    }


def _duplicate() -> bytes:
    out = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(out, "w") as archive:
        for name, value in pk.minimal().items():
            archive.writestr(name, json.dumps(value))
        archive.writestr("manifest.json", json.dumps(pk.MANIFEST | {"kind": "x"}))
    return out.getvalue()


def test_hostile_packages_are_refused_and_change_nothing(client):
    cases = _hostile()
    assert len(cases["oversize total"]) < 25 * 1024**2  # under the upload cap: the zip's own
    before = pk.snapshot(client)
    for name, data in cases.items():
        for path in ("/persona/import/preview", "/persona/import"):
            answer = _post(client, path, data)
            assert answer.status_code == 400, (name, path, answer.status_code, answer.text)
            assert answer.json()["ok"] is False and answer.json()["message"], name
        assert pk.snapshot(client) == before, name
    # The same honest package imports (the refusals were about what they changed).
    assert _post(client, "/persona/import", pk.package(pk.minimal())).status_code == 201


def test_the_caps_are_counted_on_the_decompressed_bytes_while_streaming():
    """Without the header check in front, the stream itself stops at each cap."""
    data = pk.zeros_entry("assets/big.png", 4 * 1024**2)
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        info = zipped.getinfo("assets/big.png")
        for limits, budget, match in (
                (archive.Limits(file_bytes=1024**2, ratio=10**6), 64 * 1024**2, "per-file"),
                (archive.Limits(ratio=10**6), 2 * 1024**2, "total"),
                (archive.Limits(), 64 * 1024**2, "zip bomb")):
            with pytest.raises(ApiError, match=match):
                archive._read_entry(zipped, info, limits, budget)
    assert archive.safe_name("assets/a.png") and not archive.safe_name("a/../b")


def test_an_upload_past_the_cap_is_413(client):
    big = b"PK" + b"\x00" * (26 * 1024**2)
    assert _post(client, "/persona/import", big).status_code == 413


def test_an_import_that_fails_after_writing_its_files_leaves_none(client, monkeypatch):
    state = client.app.state.homepilot
    data = pk.package(pk.minimal(**{"assets/avatar_me.png": pk.picture(80, 80)}))
    # The store's projects/ folder (there on any server with a project) is where the
    # import stages its files; it is the one thing a failed import may have created.
    (state.files.root / "projects").mkdir(parents=True)
    before = pk.snapshot(client)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")
    monkeypatch.setattr(state.projects, "create", broken)
    with pytest.raises(RuntimeError):
        _post(client, "/persona/import", data)
    assert pk.snapshot(client) == before
