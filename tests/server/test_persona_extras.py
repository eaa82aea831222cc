"""Persona extras: pictures auto-committed on POST/PUT /projects, avatar versions (commit
an edit, history, revert) and generated sets. Refusals change no row and no file.
(Dependency resolution, the atomic import and v3 profiles: test_persona_dependencies.)"""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from PIL import Image

from server.services import dependency
from tests.server import packages as pk
from tests.server.test_persona_packages import _thumb_ok, _upload


@pytest.fixture
def client(client_for, registry, _executors, request):
    """The app on the local executor: these endpoints are storage, not graphs."""
    from tests.conftest import session_executor

    return client_for(session_executor(request, registry, _executors, "local"))


FOREIGN = "http://example.com/files/f_0123456789abcdef0123.png"
MISSING = "/files/f_00000000000000000000.png"
BUILTIN = sorted(dependency.builtin_tools())[0]


def _state(client):
    return client.app.state.homepilot


def _bytes(client, relative: str) -> bytes:
    return (_state(client).files.root / relative).read_bytes()


def _versions(client) -> list[tuple]:
    return _state(client).db.read(
        "SELECT * FROM persona_avatar_versions ORDER BY project_id, version")


def _snapshot(client) -> tuple:
    """Every file of the store, every project and document row, every version row."""
    return (*pk.snapshot(client), _versions(client))


def _persona(client, **appearance) -> dict:
    answer = client.post("/projects", json={
        "name": "Mira", "project_type": "persona",
        "persona_agent": {"label": "Mira", "allowed_tools": [BUILTIN]},
        "persona_appearance": appearance})
    assert answer.status_code == 201, answer.text
    return answer.json()["project"]


def _folder(project_id: str) -> str:
    return f"projects/{project_id}/persona/appearance/"


def _served(client, url: str) -> bytes:
    answer = client.get(url)
    assert answer.status_code == 200, (url, answer.text)
    return answer.content


def _stored_extra(client, project_id: str) -> dict:
    rows = _state(client).db.read("SELECT extra FROM projects WHERE id = ?", [project_id])
    return json.loads(rows[0][0])


# -- auto-commit on POST/PUT /projects ----------------------------------------------------

def test_creating_a_persona_copies_its_own_pictures_in_and_leaves_the_others(client):
    pictures = [pk.picture(300, 300), pk.picture(320, 240, "JPEG"), pk.picture(200, 200),
                pk.picture(240, 240)]
    ids = [_upload(client, p) for p in pictures[:2]]
    state = _state(client)
    state.settings.input_dir.mkdir(parents=True, exist_ok=True)
    (state.settings.input_dir / "in put.png").write_bytes(pictures[2])
    (state.files.root / "ComfyUI").mkdir()
    (state.files.root / "ComfyUI" / "x_00001_.png").write_bytes(pictures[3])
    text_id = state.files.save(b"not a picture", ".png")
    project = _persona(
        client, selected={"set_id": "s1", "image_id": "b"},
        sets=[{"set_id": "s1", "images": [
            {"id": "a", "url": f"/files/{ids[0]}"},
            {"id": "b", "url": f"http://testserver/comfy/view/{ids[1]}"},
            {"id": "c", "url": "/view?filename=in%20put.png&subfolder=&type=input"},
            {"id": "d", "url": FOREIGN}, {"id": "e", "url": MISSING},
            {"id": "f", "url": f"/files/{text_id}"},
            {"id": "g", "url": "/view?filename=a.png&subfolder=%00"},
            {"id": "h", "url": "/comfy/view/" + "a" * 300 + "/x.png"}]}],
        outfits=[{"id": "o1", "label": "Coat",
                  "images": [{"id": "o1a", "url": "/comfy/view?filename=x_00001_.png"
                                                  "&subfolder=ComfyUI&type=output"}],
                  "view_pack": {"front": f"/api/view?filename={ids[0]}&type=output",
                                "left": {"url": "/comfy/view/ComfyUI/x_00001_.png"},
                                "back": FOREIGN}}])
    appearance = project["persona_appearance"]
    images = appearance["sets"][0]["images"]
    prefix = "/files/" + _folder(project["id"])
    for image, source in zip(images[:3], pictures[:3], strict=True):
        assert image["url"].startswith(prefix + "img_"), image
        assert _served(client, image["url"]) == source
        assert _bytes(client, image["url"][len("/files/"):]) == source
    # Not ours, missing, or not a picture: left exactly as they were.
    assert [i["url"] for i in images[3:]] == [
        FOREIGN, MISSING, f"/files/{text_id}", "/view?filename=a.png&subfolder=%00",
        "/comfy/view/" + "a" * 300 + "/x.png"]
    outfit = appearance["outfits"][0]
    assert _served(client, outfit["images"][0]["url"]) == pictures[3]
    assert outfit["images"][0]["url"] == outfit["view_pack"]["left"]["url"]  # copied once
    assert outfit["view_pack"]["front"] == images[0]["url"]
    assert outfit["view_pack"]["back"] == FOREIGN
    # The selected picture is the avatar, with a thumbnail of its pixels.
    stem = ids[1].rsplit(".", 1)[0]
    assert appearance["selected_filename"] == _folder(project["id"]) + f"avatar_{stem}.jpg"
    assert _bytes(client, appearance["selected_filename"]) == pictures[1]
    thumb = _thumb_ok(_bytes(client, appearance["selected_thumb_filename"]))
    assert thumb.getpixel((128, 128))[1] > 200  # the green dot
    assert _stored_extra(client, project["id"])["persona_appearance"] == appearance
    history = client.get(f"/projects/{project['id']}/persona/avatar/history").json()
    assert [(v["version"], v["current"], v["origin"]) for v in history["versions"]] == \
        [(1, True, "commit")]


def test_a_persona_of_foreign_pictures_is_created_as_sent(client):
    sent = {"selected": {"set_id": "s", "image_id": "a"},
            "sets": [{"set_id": "s", "images": [{"id": "a", "url": FOREIGN}]}]}
    project = _persona(client, **sent)
    assert project["persona_appearance"] == sent
    assert not (_state(client).files.root / "projects" / project["id"]).exists()
    # A chat project's pictures are not touched either.
    file_id = _upload(client, pk.picture())
    chat = client.post("/projects", json={"name": "c", "persona_appearance": {
        "sets": [{"set_id": "s", "images": [{"id": "a", "url": f"/files/{file_id}"}]}]}})
    assert chat.json()["project"]["persona_appearance"]["sets"][0]["images"][0]["url"] == \
        f"/files/{file_id}"


def test_odd_appearance_shapes_are_kept_as_sent(client):
    odd = {"sets": "nope", "selected": "s1", "outfits": [
        1, {"images": "x", "view_pack": [1]}, {"images": [None, {"id": "a", "url": 7}],
                                               "view_pack": {"front": None, "back": {}}}]}
    project = _persona(client, **odd)
    assert project["persona_appearance"] == odd
    changed = client.put(f"/projects/{project['id']}", json={"persona_appearance": {
        "sets": [None, {"set_id": "s", "images": {"a": 1}}],
        "selected": {"set_id": ["x"], "image_id": {"y": 1}}}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["project"]["persona_appearance"]["sets"] == \
        [None, {"set_id": "s", "images": {"a": 1}}]


def test_updating_a_persona_commits_new_pictures_and_syncs_the_avatar(client):
    first, second = pk.picture(300, 300), pk.picture(200, 400)
    ids = [_upload(client, p) for p in (first, second)]
    project = _persona(client, sets=[{"set_id": "s", "images": [
        {"id": "a", "url": f"/files/{ids[0]}"}]}], selected={"set_id": "s", "image_id": "a"})
    pid = project["id"]
    old = project["persona_appearance"]
    # A rename leaves the pictures and the versions as they are.
    renamed = client.put(f"/projects/{pid}", json={"name": "Mira B"}).json()["project"]
    assert renamed["persona_appearance"] == old and len(_versions(client)) == 1
    # The same appearance sent back (rewritten URLs) commits nothing new.
    client.put(f"/projects/{pid}", json={"persona_appearance": old})
    assert len(_versions(client)) == 1
    answer = client.put(f"/projects/{pid}", json={"persona_appearance": {
        "sets": old["sets"] + [{"set_id": "t", "images": [
            {"id": "b", "url": f"http://testserver/files/{ids[1]}"}]}],
        "selected": {"set_id": "t", "image_id": "b"}}})
    assert answer.status_code == 200, answer.text
    new = answer.json()["project"]["persona_appearance"]
    assert new["sets"][0] == old["sets"][0]
    assert _served(client, new["sets"][1]["images"][0]["url"]) == second
    assert _bytes(client, new["selected_filename"]) == second
    assert _thumb_ok(_bytes(client, new["selected_thumb_filename"])).size == (256, 256)
    assert _bytes(client, old["selected_filename"]) == first  # the earlier avatar is kept
    history = client.get(f"/projects/{pid}/persona/avatar/history").json()
    assert [(v["filename"], v["current"]) for v in history["versions"]] == \
        [(new["selected_filename"], True), (old["selected_filename"], False)]
    # Selecting a picture that is not ours: the request succeeds, the avatar stays.
    kept = client.put(f"/projects/{pid}", json={"persona_appearance": {
        "sets": new["sets"] + [{"set_id": "u", "images": [{"id": "c", "url": FOREIGN}]}],
        "selected": {"set_id": "u", "image_id": "c"}}})
    assert kept.status_code == 200
    assert kept.json()["project"]["persona_appearance"]["selected_filename"] == \
        new["selected_filename"]
    assert client.put("/projects/nope", json={"persona_appearance": {}}).status_code == 404


def test_a_project_becoming_a_persona_gets_its_pictures_committed(client):
    file_id = _upload(client, pk.picture())
    chat = client.post("/projects", json={"name": "c", "persona_appearance": {
        "sets": [{"set_id": "s", "images": [{"id": "a", "url": f"/files/{file_id}"}]}],
        "selected": {"set_id": "s", "image_id": "a"}}}).json()["project"]
    answer = client.put(f"/projects/{chat['id']}", json={"project_type": "persona"})
    appearance = answer.json()["project"]["persona_appearance"]
    assert appearance["sets"][0]["images"][0]["url"].startswith("/files/" + _folder(chat["id"]))
    assert _bytes(client, appearance["selected_filename"]) == pk.picture()


def test_the_avatar_commit_route_takes_comfy_view_urls(client):
    source = pk.picture(260, 260)
    file_id = _upload(client, source)
    project = _persona(client)
    for url in (f"/comfy/view/{file_id}", f"http://testserver/view?filename={file_id}"):
        answer = client.post(f"/projects/{project['id']}/persona/avatar/commit",
                             json={"source_url": url})
        assert answer.status_code == 200, answer.text
        assert _bytes(client, answer.json()["selected"]["selected_filename"]) == source
    refused = client.post(f"/projects/{project['id']}/persona/avatar/commit",
                          json={"source_url": "/comfy/view?filename=x.png&type=secret"})
    assert refused.status_code == 400


def test_deleting_a_persona_removes_its_versions(client):
    file_id = _upload(client, pk.picture())
    project = _persona(client, sets=[{"set_id": "s", "images": [
        {"id": "a", "url": f"/files/{file_id}"}]}], selected={"set_id": "s", "image_id": "a"})
    assert len(_versions(client)) == 1
    assert client.delete(f"/projects/{project['id']}").status_code == 200
    assert _versions(client) == []
    assert not (_state(client).files.root / "projects" / project["id"]).exists()


# -- avatar versions ------------------------------------------------------------------------

def _with_avatar(client) -> tuple[dict, bytes]:
    source = pk.picture(300, 300)
    file_id = _upload(client, source)
    project = _persona(client)
    answer = client.post(f"/projects/{project['id']}/persona/avatar/commit",
                         json={"source_filename": file_id})
    assert answer.status_code == 200
    return answer.json()["project"], source


def test_committing_an_edit_adds_a_version_and_keeps_the_previous_one(client):
    project, original = _with_avatar(client)
    pid, before = project["id"], project["persona_appearance"]
    edited = pk.picture(400, 300, "JPEG")  # its centre square has no red band
    edit_id = _upload(client, edited)
    _state(client).edit_sessions.start("edit-1", f"http://testserver/files/{edit_id}")
    answer = client.post(f"/projects/{pid}/persona/avatar/commit_edit",
                         json={"edit_session_id": "edit-1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    selected = body["selected"]
    assert body["previous_filename"] == before["selected_filename"]
    assert body["version"]["version"] == 2 and body["version"]["origin"] == "edit"
    assert _bytes(client, selected["selected_filename"]) == edited
    assert _bytes(client, before["selected_filename"]) == original
    # Each version has its own thumbnail: the original's shows its red band, the edit's
    # is its blue centre.
    edited_thumb = _thumb_ok(_bytes(client, selected["selected_thumb_filename"]))
    original_thumb = _thumb_ok(_bytes(client, before["selected_thumb_filename"]))
    assert edited_thumb.getpixel((2, 128))[2] > 200 and edited_thumb.getpixel((2, 128))[0] < 60
    assert original_thumb.getpixel((2, 128))[0] > 200
    # A store file works too, and so does a plain /files URL.
    third = pk.picture(250, 250)
    third_id = _upload(client, third)
    again = client.post(f"/projects/{pid}/persona/avatar/commit_edit",
                        json={"source_filename": third_id})
    assert _bytes(client, again.json()["selected"]["selected_filename"]) == third
    history = client.get(f"/projects/{pid}/persona/avatar/history").json()
    assert [(v["version"], v["origin"], v["current"], v["exists"])
            for v in history["versions"]] == [(3, "edit", True, True), (2, "edit", False, True),
                                               (1, "commit", False, True)]
    assert history["current"] == again.json()["selected"]["selected_filename"]
    assert _served(client, history["versions"][2]["url"]) == original


def test_an_uncommitted_current_avatar_is_listed_and_kept_when_replaced(client):
    """An imported persona's avatar was never committed here: it still shows in the
    history, and committing an edit records it first."""
    avatar = pk.picture(300, 300)
    imported = client.post("/persona/import", files={"file": ("x.hpersona", pk.package(
        pk.minimal(**{"assets/avatar_me.png": avatar})), "application/zip")})
    project = imported.json()["project"]
    history = client.get(f"/projects/{project['id']}/persona/avatar/history").json()
    assert [(v["version"], v["origin"], v["current"]) for v in history["versions"]] == \
        [(None, "unrecorded", True)]
    edit_id = _upload(client, pk.picture(200, 200))
    client.post(f"/projects/{project['id']}/persona/avatar/commit_edit",
                json={"source_url": f"/files/{edit_id}"})
    history = client.get(f"/projects/{project['id']}/persona/avatar/history").json()
    assert [(v["version"], v["origin"], v["current"]) for v in history["versions"]] == \
        [(2, "edit", True), (1, "adopted", False)]
    assert _served(client, history["versions"][1]["url"]) == avatar


def test_reverting_makes_an_earlier_version_current_and_rebuilds_its_thumbnail(client):
    project, original = _with_avatar(client)
    pid, first = project["id"], project["persona_appearance"]
    edit_id = _upload(client, pk.picture(200, 400))
    client.post(f"/projects/{pid}/persona/avatar/commit_edit",
                json={"source_url": f"/files/{edit_id}"})
    # The first version's thumbnail is lost: the revert writes it again.
    lost = _state(client).files.root / first["selected_thumb_filename"]
    pixels = _thumb_ok(lost.read_bytes()).tobytes()
    lost.unlink()
    answer = client.post(f"/projects/{pid}/persona/avatar/revert", json={"version": 1})
    assert answer.status_code == 200, answer.text
    selected = answer.json()["selected"]
    assert selected["selected_filename"] == first["selected_filename"]
    assert selected["selected_thumb_filename"] == first["selected_thumb_filename"]
    rebuilt = _thumb_ok(_bytes(client, selected["selected_thumb_filename"]))
    assert rebuilt.tobytes() == pixels  # the original's thumbnail, not the edit's
    assert _stored_extra(client, pid)["persona_appearance"]["selected_filename"] == \
        first["selected_filename"]
    history = client.get(f"/projects/{pid}/persona/avatar/history").json()["versions"]
    assert [(v["version"], v["current"]) for v in history] == [(2, False), (1, True)]
    # By file name (bare or store path) back to the edit.
    bare = history[0]["filename"].rsplit("/", 1)[1]
    back = client.post(f"/projects/{pid}/persona/avatar/revert", json={"filename": bare})
    assert back.json()["selected"]["selected_filename"] == history[0]["filename"]
    assert len(_versions(client)) == 2  # a revert adds no version


def test_version_refusals_change_nothing(client):
    project, _ = _with_avatar(client)
    pid = project["id"]
    chat = client.post("/projects", json={"name": "Chat"}).json()["project"]
    text_id = _state(client).files.save(b"plain text", ".png")
    good = _upload(client, pk.picture(120, 120))
    _state(client).edit_sessions.start("empty", "")
    before = _snapshot(client)
    edit = f"/projects/{pid}/persona/avatar/commit_edit"
    revert = f"/projects/{pid}/persona/avatar/revert"
    cases = [
        (edit, {}, 400), (edit, {"source_filename": good, "source_url": f"/files/{good}"}, 400),
        (edit, {"edit_session_id": "never-started"}, 404),
        (edit, {"edit_session_id": "empty"}, 404),
        (edit, {"source_url": "/view?filename=a.png&subfolder=%00"}, 400),
        (edit, {"source_url": "/comfy/view/" + "a" * 300 + "/x.png"}, 400),
        (edit, {"source_url": "/comfy/view/" + "a" * 300}, 400),
        (edit, {"source_url": "/view?filename=x.png&type=secret"}, 400),
        (edit, {"edit_session_id": "bad id!"}, 422),
        (edit, {"source_url": FOREIGN}, 400), (edit, {"source_url": MISSING}, 404),
        (edit, {"source_url": "/files/../homepilot.duckdb"}, 404),
        (edit, {"source_filename": text_id}, 400),
        ("/projects/nope/persona/avatar/commit_edit", {"source_filename": good}, 404),
        (f"/projects/{chat['id']}/persona/avatar/commit_edit", {"source_filename": good}, 400),
        (revert, {}, 400), (revert, {"version": 1, "filename": "x"}, 400),
        (revert, {"version": 9}, 404), (revert, {"version": 0}, 422),
        (revert, {"filename": "../../etc/passwd"}, 404),
        ("/projects/nope/persona/avatar/revert", {"version": 1}, 404),
    ]
    for path, body, status in cases:
        answer = client.post(path, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["ok"] is False
    assert client.get("/projects/nope/persona/avatar/history").status_code == 404
    assert client.get(f"/projects/{chat['id']}/persona/avatar/history").status_code == 400
    assert _snapshot(client) == before


def test_reverting_to_a_version_whose_picture_is_gone_is_a_conflict(client):
    project, _ = _with_avatar(client)
    pid, first = project["id"], project["persona_appearance"]
    edit_id = _upload(client, pk.picture(220, 220))
    client.post(f"/projects/{pid}/persona/avatar/commit_edit",
                json={"source_url": f"/files/{edit_id}"})
    (_state(client).files.root / first["selected_filename"]).unlink()
    before = _snapshot(client)
    answer = client.post(f"/projects/{pid}/persona/avatar/revert", json={"version": 1})
    assert answer.status_code == 409 and answer.json()["code"] == "version_missing"
    assert _snapshot(client) == before
    listed = client.get(f"/projects/{pid}/persona/avatar/history").json()["versions"]
    assert [v["exists"] for v in listed] == [True, False]


# -- generated sets ------------------------------------------------------------------------

def test_committing_generated_pictures_adds_a_set_and_can_select_one(client):
    pictures = [pk.picture(200, 200), pk.picture(300, 200), pk.picture(200, 300, "JPEG")]
    ids = [_upload(client, p) for p in pictures]
    project = _persona(client, sets=[{"set_id": "old", "images": [{"id": "x", "url": FOREIGN}]}])
    pid = project["id"]
    answer = client.post(f"/projects/{pid}/persona/appearance/commit_generated", json={
        "image_urls": [f"/files/{ids[0]}", f"/comfy/view/{ids[1]}",
                       f"http://testserver/view?filename={ids[2]}&type=output"],
        "set_id": "gen1", "prompt": "a calm guide", "select": 1})
    assert answer.status_code == 200, answer.text
    appearance = answer.json()["project"]["persona_appearance"]
    assert [s["set_id"] for s in appearance["sets"]] == ["old", "gen1"]
    added = appearance["sets"][1]
    assert added["prompt"] == "a calm guide" and added == answer.json()["set"]
    assert [i["id"] for i in added["images"]] == ["img1", "img2", "img3"]
    for image, source in zip(added["images"], pictures, strict=True):
        assert image["url"].startswith("/files/" + _folder(pid))
        assert _served(client, image["url"]) == source
    assert appearance["selected"] == {"set_id": "gen1", "image_id": "img2"}
    assert _bytes(client, appearance["selected_filename"]) == pictures[1]
    _thumb_ok(_bytes(client, appearance["selected_thumb_filename"]))
    history = client.get(f"/projects/{pid}/persona/avatar/history").json()["versions"]
    assert [(v["origin"], v["source_url"]) for v in history] == \
        [("generated", f"/comfy/view/{ids[1]}")]
    # Without select: a set is added, the avatar stays.
    plain = client.post(f"/projects/{pid}/persona/appearance/commit_generated",
                        json={"image_urls": [f"/files/{ids[2]}"]}).json()
    shown = plain["project"]["persona_appearance"]
    assert len(shown["sets"]) == 3 and plain["set"]["set_id"].startswith("set_")
    assert shown["selected_filename"] == appearance["selected_filename"]


def test_generated_refusals_copy_nothing(client):
    good = _upload(client, pk.picture())
    text_id = _state(client).files.save(b"plain text", ".png")
    project = _persona(client, sets=[{"set_id": "taken", "images": []}])
    chat = client.post("/projects", json={"name": "Chat"}).json()["project"]
    before = _snapshot(client)
    url = f"/projects/{project['id']}/persona/appearance/commit_generated"
    ok = f"/files/{good}"
    cases = [
        (url, {"image_urls": []}, 422), (url, {}, 422),
        (url, {"image_urls": [ok] * 33}, 422),
        (url, {"image_urls": [ok, FOREIGN]}, 400),  # the good one is not copied either
        (url, {"image_urls": [ok, MISSING]}, 404),
        (url, {"image_urls": [ok, f"/files/{text_id}"]}, 400),
        (url, {"image_urls": [ok], "select": 1}, 400),
        (url, {"image_urls": [ok], "select": -1}, 422),
        (url, {"image_urls": [ok], "set_id": "taken"}, 409),
        (url, {"image_urls": [ok], "set_id": "../x"}, 422),
        (url, {"image_urls": ["/view?filename=../../x.png"]}, 400),
        (f"/projects/{chat['id']}/persona/appearance/commit_generated",
         {"image_urls": [ok]}, 400),
        ("/projects/nope/persona/appearance/commit_generated", {"image_urls": [ok]}, 404),
    ]
    for path, body, status in cases:
        answer = client.post(path, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["ok"] is False
    assert _snapshot(client) == before


def test_pictures_are_copied_once_whatever_url_names_them(client):
    """The same bytes under two URLs end as one file named by their hash."""
    source = pk.picture(150, 150)
    ids = [_upload(client, source), _upload(client, source)]
    project = _persona(client, sets=[{"set_id": "s", "images": [
        {"id": "a", "url": f"/files/{ids[0]}"}, {"id": "b", "url": f"/comfy/view/{ids[0]}"}]}])
    urls = [i["url"] for i in project["persona_appearance"]["sets"][0]["images"]]
    assert urls[0] == urls[1]
    digest = hashlib.sha256(source).hexdigest()[:8]
    assert urls[0].endswith(f"_{digest}.png")
    assert Image.open(io.BytesIO(_served(client, urls[0]))).size == (150, 150)
