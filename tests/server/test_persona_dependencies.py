"""Persona imports with their dependencies: what would satisfy them here
(resolve-deps), recording what this server satisfies (install-deps), the all-or-nothing
atomic import, and v3 profiles that round-trip. Refusals change no row and no file."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.server import packages as pk
from tests.server.test_persona_extras import (
    BUILTIN,
    _bytes,
    _persona,
    _snapshot,
    _state,
    _stored_extra,
)
from tests.server.test_persona_packages import _install_models


@pytest.fixture
def client(client_for, registry, _executors, request):
    """The app on the local executor: these endpoints are storage, not graphs."""
    from tests.conftest import session_executor

    return client_for(session_executor(request, registry, _executors, "local"))


PROFILES = {"cognitive_profile": {"reasoning": "careful", "curiosity": 0.7},
            "embodiment_profile": {"height_cm": 170, "gestures": ["nod"]},
            "vr_profile": {"avatar_rig": "humanoid"},
            "voice_profile": {"voice": "alto", "rate": 1.05},
            "relationship_model": {"stage": "friend", "trust": 0.4}}


# -- dependencies --------------------------------------------------------------------------

def _deps_package(**extra) -> bytes:
    return pk.package(pk.minimal(**{
        "dependencies/models.json": {"image_models": [
            {"filename": "sdxl.safetensors", "role": "primary_avatar", "required": True}],
            "llm_hint": {"recommended": "tiny-chat"}},
        "dependencies/tools.json": {"personality_tools": {
            "tools": [BUILTIN, BUILTIN + "x", "definitely_not_a_tool"]},
            "forge_tools": {"tools": [{"id": "t1", "name": "hp.web.search"}]}},
        "dependencies/mcp_servers.json": {"servers": [
            {"name": "hp-web-search", "default_port": 9105,
             "source": {"type": "builtin", "builtin_id": "hp-web-search"}}]},
        **extra}))


def _post(client, path: str, data: bytes):
    return client.post(path, files={"file": ("x.hpersona", data, "application/zip")})


def test_resolve_deps_says_what_installed_here_would_satisfy_each_unmet_one(client):
    _install_models(client)
    before = _snapshot(client)
    answer = _post(client, "/persona/import/resolve-deps", _deps_package())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(d["name"], d["status"]) for d in body["dependency_check"]["models"]] == \
        [("sdxl.safetensors", "degraded"), ("tiny-chat", "available")]
    found = {(r["kind"], r["name"]): r for r in body["resolutions"]}
    assert set(found) == {("model", "sdxl.safetensors"), ("tool", BUILTIN + "x"),
                          ("tool", "definitely_not_a_tool"), ("tool", "hp.web.search"),
                          ("mcp_server", "hp-web-search")}
    model = found["model", "sdxl.safetensors"]
    assert (model["action"], model["resolvable"], model["options"]) == \
        ("use_fallback", True, ["avatar-model"])
    typo = found["tool", BUILTIN + "x"]
    assert typo["action"] == "use_installed" and BUILTIN in typo["options"]
    for key in (("tool", "definitely_not_a_tool"), ("tool", "hp.web.search"),
                ("mcp_server", "hp-web-search")):
        assert (found[key]["action"], found[key]["resolvable"]) == ("cannot_install", False)
    assert "network" in found["mcp_server", "hp-web-search"]["detail"]
    assert body["all_resolvable"] is True
    assert _snapshot(client) == before
    assert _post(client, "/persona/import/resolve-deps", b"not a zip").status_code == 400


def test_resolve_deps_without_models_cannot_resolve_the_required_ones(client):
    body = _post(client, "/persona/import/resolve-deps", _deps_package()).json()
    model = next(r for r in body["resolutions"] if r["name"] == "sdxl.safetensors")
    assert (model["action"], model["options"]) == ("cannot_install", [])
    assert body["all_resolvable"] is False


def test_install_deps_records_what_this_server_satisfies(client):
    _install_models(client)
    project = _persona(client)
    pid = project["id"]
    answer = client.post("/persona/import/install-deps", json={"project_id": pid, "items": [
        {"kind": "model", "name": "sdxl.safetensors", "use": "avatar-model"},
        {"kind": "model", "name": "tiny-chat"},
        {"kind": "tool", "name": BUILTIN},
        {"kind": "model", "name": "flux.safetensors"},
        {"kind": "model", "name": "x", "use": "not-installed"},
        {"kind": "mcp_server", "name": "hp-web-search"}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(r["name"], r["status"], r["satisfied_by"]) for r in body["results"]] == [
        ("sdxl.safetensors", "satisfied", "avatar-model"), ("tiny-chat", "satisfied", "tiny-chat"),
        (BUILTIN, "satisfied", BUILTIN), ("flux.safetensors", "cannot_install", None),
        ("x", "not_found", None), ("hp-web-search", "cannot_install", None)]
    assert body["all_satisfied"] is False
    stored = _stored_extra(client, pid)["persona_dependencies"]
    assert [(s["kind"], s["name"], s["satisfied_by"]) for s in stored["satisfied"]] == [
        ("model", "sdxl.safetensors", "avatar-model"), ("model", "tiny-chat", "tiny-chat"),
        ("tool", BUILTIN, BUILTIN)]
    shown = client.get(f"/projects/{pid}").json()["project"]
    assert shown["persona_dependencies"] == stored
    # Without items: the persona's own dependencies (its tool, its image model's fallback).
    own = client.post("/persona/import/install-deps", json={"project_id": pid}).json()
    assert (BUILTIN, "satisfied") in [(r["name"], r["status"]) for r in own["results"]]


def test_install_deps_refusals_change_nothing(client):
    project = _persona(client)
    chat = client.post("/projects", json={"name": "Chat"}).json()["project"]
    before = _snapshot(client)
    cases = [
        ({"project_id": project["id"], "items": [{"kind": "mcp_server", "name": "hp-x"},
                                                 {"kind": "model", "name": "sdxl"}]}, 409),
        ({"project_id": "nope", "items": []}, 404),
        ({"project_id": chat["id"], "items": []}, 400),
        ({"project_id": project["id"], "items": [{"kind": "plugin", "name": "x"}]}, 422),
        ({"project_id": project["id"], "items": [{"kind": "tool", "name": ""}]}, 422),
        ({"items": []}, 422),
    ]
    for body, status in cases:
        answer = client.post("/persona/import/install-deps", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["ok"] is False
    refused = client.post("/persona/import/install-deps", json=cases[0][0]).json()
    assert [r["status"] for r in refused["results"]] == ["cannot_install", "cannot_install"]
    assert _snapshot(client) == before


# -- atomic import -------------------------------------------------------------------------

def test_atomic_import_creates_the_persona_with_its_dependency_record(client):
    _install_models(client)
    avatar = pk.picture(300, 300)
    rows = len(pk.snapshot(client)[1])
    answer = _post(client, "/persona/import/atomic?auto_install_servers=false",
                   _deps_package(**{"assets/avatar_me.png": avatar}))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    project = body["project"]
    assert len(pk.snapshot(client)[1]) == rows + 1
    assert _bytes(client, project["persona_appearance"]["selected_filename"]) == avatar
    assert body["skipped_servers"] == ["hp-web-search"]
    stored = _stored_extra(client, project["id"])["persona_dependencies"]
    assert [(s["name"], s["satisfied_by"]) for s in stored["satisfied"]] == [
        ("sdxl.safetensors", "avatar-model"), ("tiny-chat", "tiny-chat"), (BUILTIN, BUILTIN)]


def test_atomic_import_refusals_write_nothing(client, monkeypatch):
    data = _deps_package(**{"assets/avatar_me.png": pk.picture(80, 80)})
    (_state(client).files.root / "projects").mkdir(parents=True)
    before = _snapshot(client)
    # No models installed: the required image and chat models cannot be had.
    missing = _post(client, "/persona/import/atomic?auto_install_servers=false", data)
    assert missing.status_code == 409 and missing.json()["code"] == "dependencies_unsatisfied"
    assert _snapshot(client) == before
    _install_models(client)
    servers = _post(client, "/persona/import/atomic", data)  # auto_install_servers=true
    assert servers.status_code == 409 and servers.json()["code"] == "cannot_install"
    assert "hp-web-search" in servers.json()["message"]
    assert [r["name"] for r in servers.json()["results"] if r["kind"] == "mcp_server"] == \
        ["hp-web-search"]
    for bad in (b"", b"not a zip", pk.with_entry("../evil.png", pk.picture(120, 120))):
        assert _post(client, "/persona/import/atomic", bad).status_code == 400
    assert _post(client, "/persona/import/atomic?force_reinstall=maybe",
                 data).status_code == 422
    assert _snapshot(client) == before

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")
    monkeypatch.setattr(_state(client).projects, "create", broken)
    with pytest.raises(RuntimeError):
        _post(client, "/persona/import/atomic?auto_install_servers=false", data)
    assert _snapshot(client) == before


# -- v3 profiles ---------------------------------------------------------------------------

def _v3_package() -> bytes:
    return pk.package(pk.minimal(**{
        "manifest.json": pk.MANIFEST | {"schema_version": 3},
        "blueprint/persona_agent.json": {"label": "Mira", "role": "guide"},
        **{f"blueprint/{name}.json": body for name, body in PROFILES.items()}}))


def test_a_v3_package_keeps_its_profiles_and_exports_them_again(client):
    imported = _post(client, "/persona/import", _v3_package())
    assert imported.status_code == 201, imported.text
    project = imported.json()["project"]
    assert project["persona_agent"] == {"label": "Mira", "role": "guide",
                                        "profiles": PROFILES}
    assert _stored_extra(client, project["id"])["persona_agent"]["profiles"] == PROFILES
    exported = client.get(f"/projects/{project['id']}/persona/export")
    with zipfile.ZipFile(io.BytesIO(exported.content)) as package:
        files = {n: package.read(n) for n in package.namelist()}
    for name, body in PROFILES.items():
        assert json.loads(files[f"blueprint/{name}.json"]) == body
    assert json.loads(files["blueprint/persona_agent.json"]) == {"label": "Mira",
                                                                 "role": "guide"}
    assert json.loads(files["manifest.json"])["schema_version"] == 3
    preview = _post(client, "/persona/import/preview", exported.content).json()
    assert preview["profiles"] == PROFILES
    again = _post(client, "/persona/import", exported.content).json()["project"]
    assert again["persona_agent"] == project["persona_agent"]
    # A persona without profiles still exports as v2, with no profile files.
    plain = _persona(client)
    with zipfile.ZipFile(io.BytesIO(client.get(
            f"/projects/{plain['id']}/persona/export").content)) as package:
        names = package.namelist()
        assert json.loads(package.read("manifest.json"))["schema_version"] == 2
    assert not [n for n in names if n.endswith("_profile.json")]


def test_a_profile_that_is_not_a_json_object_is_refused(client):
    before = _snapshot(client)
    for body in ("[1, 2]", "{not json", json.dumps({"x": "y" * 1_100_000})):
        data = pk.package(pk.minimal(**{"blueprint/vr_profile.json": body}))
        answer = _post(client, "/persona/import", data)
        assert answer.status_code == 400, answer.text
        assert "vr_profile.json" in answer.json()["message"]
    assert _snapshot(client) == before
