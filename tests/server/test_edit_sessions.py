"""Edit sessions (v1) inside the server: upload, edit by messages, revert, select; stored
in DuckDB."""

from __future__ import annotations

import numpy as np

from nodes.testpack.install import TINY_SD
from tests.server.media import picture, pixels, png, stored_files, upload

SESSION = "/v1/edit-sessions/conv-1"


def message(client, text: str) -> dict:
    reply = client.post(f"{SESSION}/message", json={"message": text,
                                                   "extra": {"imgModel": TINY_SD}})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_upload_two_messages_revert_select(media_app):
    uploaded = media_app.post(f"{SESSION}/image",
                              files={"file": ("p.png", png(picture()), "image/png")})
    assert uploaded.status_code == 200, uploaded.text
    state = uploaded.json()
    original = state["original_image_url"]
    assert state["active_image_url"] == original and original.startswith("/files/f_")
    assert [v["instruction"] for v in state["versions"]] == ["[Original Upload]"]

    first = message(media_app, "make the sky blue --steps 3 --seed 1")
    assert first["raw"]["text"] == "Done."
    first_url = first["raw"]["media"]["images"][0]
    second = message(media_app, "add a red boat --steps 3 --seed 2")
    second_url = second["raw"]["media"]["images"][0]
    state = media_app.get(SESSION).json()
    assert [v["url"] for v in state["versions"]] == [second_url, first_url, original]
    assert state["active_image_url"] == second_url
    assert state["versions"][0]["parent_url"] == first_url  # edits chain on the active one
    assert state["versions"][1]["parent_url"] == original
    assert state["versions"][0]["settings"]["seed"] == 2
    assert not np.array_equal(pixels(media_app, second_url), pixels(media_app, first_url))

    reverted = media_app.post(f"{SESSION}/revert", params={"index": 2}).json()
    assert reverted["active_image_url"] == original
    assert [v["url"] for v in reverted["versions"]] == [second_url, first_url, original]

    selected = media_app.post(f"{SESSION}/select", json={"image_url": first_url}).json()
    assert selected["active_image_url"] == first_url
    assert [v["url"] for v in selected["versions"]] == [first_url, second_url, original]
    assert selected["versions"][0]["instruction"] == "make the sky blue --steps 3 --seed 1"

    third = message(media_app, "at night --steps 2 --seed 3")  # edits the selected one
    state = media_app.get(SESSION).json()
    assert state["versions"][0]["parent_url"] == first_url
    assert state["active_image_url"] == third["raw"]["media"]["images"][0]
    rows = media_app.app.state.homepilot.db.read(
        "SELECT count(*) FROM edit_versions WHERE session_id = 'conv-1'")
    assert rows == [(4,)]

    dropped = media_app.delete(f"{SESSION}/version", params={"image_url": state[
        "active_image_url"]}).json()
    assert dropped["ok"] is True and dropped["active_image_url"] == first_url
    assert [v["url"] for v in dropped["versions"]] == [first_url, second_url, original]

    assert media_app.delete(SESSION).json() == {"ok": True}
    assert media_app.get(SESSION).json()["versions"] == []


def test_an_image_url_starts_a_session_and_an_instruction_edits_it_at_once(media_app):
    source = upload(media_app)
    reply = media_app.post(f"{SESSION}/image", json={"image_url": source,
                                                     "instruction": "sepia --steps 2"})
    state = reply.json()
    assert reply.status_code == 200 and state["original_image_url"] == source
    assert state["result"]["text"] == "Done."
    assert state["active_image_url"] == state["result"]["media"]["images"][0]
    assert len(state["versions"]) == 2


def test_session_errors_are_clear_and_change_nothing(media_app):
    before = stored_files(media_app)
    no_image = media_app.post(f"{SESSION}/message", json={"message": "make it blue"})
    assert no_image.status_code == 400 and no_image.json()["code"] == "no_active_image"
    no_history = media_app.post(f"{SESSION}/revert", params={"index": 0})
    assert no_history.status_code == 400 and no_history.json()["message"] == \
        "No history available"
    not_a_picture = media_app.post(f"{SESSION}/image",
                                   files={"file": ("x.png", b"hello", "image/png")})
    assert not_a_picture.status_code == 400 and not_a_picture.json()["code"] == "not_an_image"
    assert stored_files(media_app) == before
    assert media_app.get(SESSION).json()["versions"] == []

    media_app.post(f"{SESSION}/image", files={"file": ("p.png", png(picture()), "image/png")})
    out_of_range = media_app.post(f"{SESSION}/revert", params={"index": 5})
    assert out_of_range.status_code == 400
    assert out_of_range.json()["message"] == "Invalid history index. Valid range: 0-0"
    elsewhere = media_app.post(f"{SESSION}/select",
                               json={"image_url": "http://10.0.0.5/files/f_0123.png"})
    assert elsewhere.status_code == 400 and elsewhere.json()["code"] == "invalid_image_url"
    bad_id = media_app.get("/v1/edit-sessions/a b")
    assert bad_id.status_code == 422
    # JSON nested deeper than Python recurses used to be a 500.
    too_deep = media_app.post(f"{SESSION}/image", content=b"[" * 100_000 + b"]" * 100_000,
                              headers={"content-type": "application/json"})
    assert too_deep.status_code == 400 and too_deep.json()["code"] == "invalid_body"
    assert len(media_app.get(SESSION).json()["versions"]) == 1


def test_a_refused_instruction_on_upload_keeps_the_old_session(media_app):
    media_app.post(f"{SESSION}/image", files={"file": ("p.png", png(picture()), "image/png")})
    before_state, before_files = media_app.get(SESSION).json(), stored_files(media_app)
    for instruction, code in (("blue --steps 0", "invalid_flag"),
                              ("x" * 10_001, "invalid_instruction")):
        reply = media_app.post(f"{SESSION}/image", data={"instruction": instruction},
                               files={"file": ("q.png", png(picture(32, 32)), "image/png")})
        assert reply.status_code == 400 and reply.json()["code"] == code, reply.text
    assert media_app.get(SESSION).json() == before_state
    assert stored_files(media_app) == before_files


def test_an_upload_with_an_instruction_starts_the_session_from_the_edit(media_app):
    reply = media_app.post(f"{SESSION}/image", data={"instruction": "sepia --steps 2"},
                           files={"file": ("p.png", png(picture()), "image/png")})
    state = reply.json()
    assert reply.status_code == 200, reply.text
    edited = state["result"]["media"]["images"][0]
    assert [v["url"] for v in state["versions"]] == [edited, state["original_image_url"]]
    assert state["versions"][0]["parent_url"] == state["original_image_url"]
    assert state["versions"][1]["parent_url"] is None  # null fields stay in the state


def test_metadata_is_stripped_and_the_photo_turned_upright(media_app):
    import io

    from PIL import Image

    photo = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    exif[0x010E] = "my secret description"
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=exif.tobytes())
    reply = media_app.post(f"{SESSION}/image",
                           files={"file": ("p.jpg", buffer.getvalue(), "image/jpeg")})
    url = reply.json()["original_image_url"]
    stored = media_app.get(url).content
    assert b"my secret description" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == (20, 40) and not image.getexif()
