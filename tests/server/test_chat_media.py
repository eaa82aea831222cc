"""POST /chat in the media modes (imagine, edit, animate) with the test pack, and the bad
input each refuses with a 4xx before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nodes.backends.videofile import probe_video
from nodes.testpack.install import TINY_INPAINT, TINY_SD
from tests.server.media import (
    fetched,
    message_count,
    pixels,
    stored_files,
    upload,
)


def chat(client, message: str, **fields) -> dict:
    reply = client.post("/chat", json={"message": message, **fields})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_imagine_returns_fetchable_pngs_of_the_size_asked_and_its_seed_repeats(media_app):
    out = chat(media_app, "a lighthouse at dusk", mode="imagine", imgWidth=80, imgHeight=64,
               imgSteps=3, imgSeed=21, imgBatchSize=2, imgPreset="custom")
    media = out["media"]
    assert out["text"] == "Here you go." and media["model"] == TINY_SD
    assert media["seeds"] == [21, 22] and media["seed"] == 21
    assert (media["width"], media["height"], media["steps"]) == (80, 64, 3)
    images = [fetched(media_app, url) for url in media["images"]]
    assert [(i.format, i.size) for i in images] == [("PNG", (80, 64))] * 2
    again = chat(media_app, "a lighthouse at dusk", mode="imagine", imgWidth=80,
                 imgHeight=64, imgSteps=3, imgSeed=22, imgPreset="custom")
    assert np.array_equal(pixels(media_app, again["media"]["images"][0]),
                          pixels(media_app, media["images"][1]))
    stored = media_app.get(f"/conversations/{out['conversation_id']}/messages").json()
    assert stored["messages"][1]["media"]["images"] == media["images"]


def test_imagine_is_detected_from_the_wording_in_chat_mode(media_app):
    out = chat(media_app, "generate a picture of a cat", imgWidth=64, imgHeight=64,
               imgSteps=2, imgPreset="custom")
    assert out["media"]["model"] == TINY_SD and len(out["media"]["images"]) == 1


def test_a_random_seed_is_reported_and_reproduces_the_picture(media_app):
    first = chat(media_app, "a red fox", mode="imagine", imgWidth=64, imgHeight=64,
                 imgSteps=2, imgPreset="custom")
    seed = first["media"]["seed"]
    assert seed >= 0
    replay = chat(media_app, "a red fox", mode="imagine", imgWidth=64, imgHeight=64,
                  imgSteps=2, imgSeed=seed, imgPreset="custom")
    assert np.array_equal(pixels(media_app, first["media"]["images"][0]),
                          pixels(media_app, replay["media"]["images"][0]))


def test_edit_redraws_an_uploaded_picture_with_the_flags_given(media_app):
    source = upload(media_app)
    out = chat(media_app, f"edit {source} make it blue --steps 4 --denoise 0.6 --seed 9")
    media = out["media"]
    assert out["text"] == "Done." and len(media["images"]) == 1
    settings = media["edit_settings"]
    assert (settings["mode"], settings["steps"], settings["denoise"], settings["seed"]) == \
        ("img2img", 4, 0.6, 9)
    assert settings["ckpt_name"] == TINY_SD and settings["mask_url"] is None
    result = pixels(media_app, media["images"][0])
    assert result.shape == (48, 64, 3)
    assert not np.array_equal(result, pixels(media_app, source))


def test_edit_with_a_mask_changes_only_the_masked_part(media_app):
    source = upload(media_app)
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (8, 8, 40, 32))
    mask_url = upload(media_app, mask.convert("RGB"))
    upload_id = source.removeprefix("/files/")  # an upload id works as well as a URL
    out = chat(media_app, f"edit {upload_id} a red door --mask {mask_url} --steps 3 --seed 4")
    settings = out["media"]["edit_settings"]
    assert settings["mode"] == "inpaint" and settings["mask_url"] == mask_url
    assert settings["ckpt_name"] == TINY_INPAINT
    before = pixels(media_app, source)
    after = pixels(media_app, out["media"]["images"][0])
    outside = np.asarray(mask) == 0
    assert np.abs(after[outside] - before[outside]).max() <= 1
    assert np.abs(after[~outside] - before[~outside]).mean() > 5


def test_animate_makes_a_playable_mp4_with_the_frames_asked(media_app):
    source = upload(media_app)
    out = chat(media_app, f"animate {source} slow zoom", vidSeconds=1, vidFps=6,
               vidWidth=80, vidHeight=64, vidSteps=2, vidSeed=3, vidMotion="pan_right")
    media = out["media"]
    assert out["text"] == "Here's your animated video!"
    assert (media["frames"], media["fps"], media["width"], media["height"]) == (6, 6, 80, 64)
    video = media_app.get(media["video_url"])
    assert video.headers["content-type"] == "video/mp4"
    info = probe_video(video.content)  # decodes every frame with ffmpeg
    assert (info.frames, info.width, info.height, info.fps) == (6, 80, 64, 6.0)
    webp = fetched(media_app, media["webp_url"])
    assert webp.format == "WEBP" and webp.n_frames == 6
    assert media["source_image"] == source


def test_animate_without_a_picture_draws_a_starter_first(media_app):
    out = chat(media_app, "animate a sailing boat", mode="animate", vidSeconds=1, vidFps=4,
               vidWidth=64, vidHeight=64, vidSteps=2, imgSteps=2)
    media = out["media"]
    assert out["text"] == "Generated image and animated it!"
    assert fetched(media_app, media["auto_generated_image"]).size == (64, 64)
    assert media["auto_generated_meta"]["model"] == TINY_SD and media["frames"] == 4


def test_an_allow_listed_local_host_may_serve_the_source(media_app, picture_host):
    settings = media_app.app.state.homepilot.settings
    settings.fetch_allow = "127.0.0.0/8"
    try:
        out = chat(media_app, f"edit {picture_host}/p.png make it blue --steps 2")
    finally:
        settings.fetch_allow = ""
    assert pixels(media_app, out["media"]["source_image"]).shape == (48, 64, 3)


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"message": "edit http://127.0.0.1:9/p.png blue"}, 400, "url_not_allowed"),
    ({"message": "edit http://169.254.169.254/latest/meta-data blue"}, 400,
     "url_not_allowed"),
    ({"message": "edit http://no-such-host.invalid/p.png blue"}, 400, "unreachable_url"),
    ({"message": "edit /files/f_0123456789abcdef0123.png blue"}, 404, "image_not_found"),
    ({"message": "the picture please", "mode": "edit"}, 400, "image_required"),
    ({"message": "a cat", "mode": "imagine", "imgModel": "no-such-model"}, 404,
     "model_not_found"),
    ({"message": "a cat", "mode": "imagine", "imgWidth": 100000, "imgPreset": "custom"},
     422, "invalid_request"),
    ({"message": "a cat", "mode": "animate", "vidMotion": "spin"}, 400, "invalid_motion"),
    ({"message": "a cat", "mode": "animate", "vidModel": "no-such-video"}, 404,
     "model_not_found"),
    ({"message": "edit {source} blue --cn canny"}, 400, "unsupported_option"),
    ({"message": "edit {source} blue --steps many"}, 400, "invalid_flag"),
    ({"message": "edit {source} blue --denoise 0"}, 400, "invalid_flag"),
    ({"message": "edit {source} blue --steps 2 --denoise 0.2"}, 400, "invalid_flag"),
    ({"message": "edit {source} blue --sampler warp"}, 400, "invalid_flag"),
    ({"message": "edit {source} blue --ckpt nope.safetensors"}, 404, "model_not_found"),
])
def test_bad_media_requests_are_refused_and_write_nothing(media_app, body, status, code):
    source = upload(media_app)
    body = {**body, "message": body["message"].format(source=source)}
    files_before, messages_before = stored_files(media_app), message_count(media_app)
    reply = media_app.post("/chat", json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["code"] == code and reply.json()["ok"] is False
    assert stored_files(media_app) == files_before
    assert message_count(media_app) == messages_before


def test_a_source_that_is_not_a_picture_is_refused(media_app, picture_host):
    settings = media_app.app.state.homepilot.settings
    settings.fetch_allow = "127.0.0.1"
    try:
        before = stored_files(media_app)
        reply = media_app.post("/chat", json={"message": f"edit {picture_host}/notes.txt x"})
    finally:
        settings.fetch_allow = ""
    assert reply.status_code == 400 and reply.json()["code"] == "not_an_image"
    assert stored_files(media_app) == before


def test_small_pictures_are_edited_at_their_size_and_hopeless_shapes_refused(media_app):
    from tests.server.media import picture

    small = upload(media_app, picture(20, 12))
    out = chat(media_app, f"edit {small} make it blue --steps 2")
    assert pixels(media_app, out["media"]["images"][0]).shape == (12, 20, 3)
    skinny = upload(media_app, picture(3000, 20))
    before = stored_files(media_app)
    reply = media_app.post("/chat", json={"message": f"edit {skinny} make it blue"})
    assert reply.status_code == 400 and reply.json()["code"] == "invalid_input"
    assert "too narrow" in reply.json()["message"] and stored_files(media_app) == before


def test_deleting_the_conversation_removes_what_it_made_and_keeps_the_source(media_app):
    source = upload(media_app)
    out = chat(media_app, f"edit {source} make it blue --steps 2")
    made = out["media"]["images"][0].removeprefix("/files/")
    reply = media_app.delete(f"/conversations/{out['conversation_id']}")
    assert reply.status_code == 200 and reply.json()["deleted_media_files"] == 1
    assert made not in stored_files(media_app)
    assert source.removeprefix("/files/") in stored_files(media_app)


@pytest.fixture
def home_app(registry, executor, test_pack):
    """The app over the test home itself, so that workers of either executor write the
    files it serves."""
    from fastapi.testclient import TestClient

    from engine.settings import get_settings
    from server.app import create_app

    with TestClient(create_app(get_settings(), registry, executor)) as client:
        yield client


def test_imagine_on_either_executor_serves_pngs_of_the_size_asked(home_app):
    out = chat(home_app, "a lighthouse", mode="imagine", imgWidth=64, imgHeight=80,
               imgSteps=2, imgSeed=3, imgPreset="custom")
    image = fetched(home_app, out["media"]["images"][0])
    assert (image.format, image.size) == ("PNG", (64, 80))
    home_app.app.state.homepilot.executor.clear_cache()  # drawn again, not served cached
    again = chat(home_app, "a lighthouse", mode="imagine", imgWidth=64, imgHeight=80,
                 imgSteps=2, imgSeed=3, imgPreset="custom")
    assert np.array_equal(pixels(home_app, again["media"]["images"][0]),
                          pixels(home_app, out["media"]["images"][0]))
