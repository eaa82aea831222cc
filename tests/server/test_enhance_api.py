"""The image enhancement API (v1): upscale, enhance, background, outpaint, capabilities and
edit-model preferences, over the real graphs with the test pack."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from engine.executors.local import LocalExecutor
from engine.files import FileStore
from engine.models.store import ModelStore
from engine.settings import Settings
from nodes.testpack.install import TINY_INPAINT, TINY_UPSCALER, install_test_pack, remove_test_pack
from server.app import create_app
from tests.server.media import picture, pixels, stored_files, upload


def post(client, path: str, **body) -> dict:
    reply = client.post(path, json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_upscale_x2_doubles_both_sides_with_the_learned_upscaler(media_app):
    source = upload(media_app, picture(40, 24))
    out = post(media_app, "/v1/upscale", image_url=source, scale=2)
    assert out["model_used"] == TINY_UPSCALER
    assert out["original_size"] == [40, 24] and out["new_size"] == [80, 48]
    assert pixels(media_app, out["media"]["images"][0]).shape == (48, 80, 3)


def test_upscale_to_a_width_keeps_the_aspect(media_app):
    source = upload(media_app, picture(40, 24))
    out = post(media_app, "/v1/upscale", image_url=source, width=100)
    assert out["new_size"] == [100, 60]


def test_enhance_photo_at_scale_2_enlarges_and_reports_its_method(media_app):
    source = upload(media_app)
    out = post(media_app, "/v1/enhance", image_url=source, mode="photo", scale=2)
    assert out["mode_used"] == "photo" and out["enhanced_size"] == [128, 96]
    assert TINY_UPSCALER in out["model_used"]
    faces = post(media_app, "/v1/enhance", image_url=source, mode="faces", scale=4)
    assert faces["enhanced_size"] == [64, 48] and faces["faces_found"] == 0


def test_background_remove_gives_an_alpha_channel(media_app):
    out = post(media_app, "/v1/background", image_url=upload(media_app), action="remove")
    assert out["has_alpha"] is True and out["action_used"] == "remove"
    alpha = pixels(media_app, out["media"]["images"][0])[..., 3]
    assert alpha.min() < 128 < alpha.max() and alpha[24, 32] > 128


def test_background_blur_keeps_the_subject_and_softens_the_rest(media_app):
    source = upload(media_app)
    out = post(media_app, "/v1/background", image_url=source, action="blur", blur_strength=20)
    before, after = pixels(media_app, source), pixels(media_app, out["media"]["images"][0])
    assert out["has_alpha"] is False and after.shape == before.shape
    assert np.abs(after[24, 32] - before[24, 32]).max() <= 2  # the subject stays sharp
    assert not np.array_equal(after, before)


def test_background_replace_repaints_only_the_background(media_app):
    source = upload(media_app)
    out = post(media_app, "/v1/background", image_url=source, action="replace",
               prompt="a beach")
    assert out["model_used"].endswith(TINY_INPAINT)
    after = pixels(media_app, out["media"]["images"][0])
    assert after.shape == (48, 64, 3) and not np.array_equal(after, pixels(media_app, source))


def test_outpaint_right_by_64_widens_by_64_and_keeps_the_original(media_app):
    source = upload(media_app)
    out = post(media_app, "/v1/outpaint", image_url=source, direction="right",
               extend_pixels=64)
    assert out["original_size"] == [64, 48] and out["new_size"] == [128, 48]
    result = pixels(media_app, out["media"]["images"][0])
    assert np.array_equal(result[:, :64], pixels(media_app, source))


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/v1/upscale", {"image_url": "/files/f_0123456789abcdef0123.png"}, 404,
     "image_not_found"),
    ("/v1/upscale", {"image_url": "{source}", "model": "no-such-upscaler"}, 404,
     "model_not_found"),
    ("/v1/upscale", {"image_url": "{source}", "scale": 9}, 422, "invalid_request"),
    ("/v1/upscale", {"image_url": "{source}", "width": 10}, 400, "invalid_size"),
    ("/v1/enhance", {"image_url": "{source}", "scale": 3}, 422, "invalid_request"),
    ("/v1/enhance", {"image_url": "http://10.1.2.3/p.png"}, 400, "url_not_allowed"),
    ("/v1/background", {"image_url": "{source}", "action": "replace"}, 400,
     "prompt_required"),
    ("/v1/background", {"image_url": "ftp://example.com/p.png"}, 400, "invalid_image_url"),
    ("/v1/outpaint", {"image_url": "{source}", "extend_pixels": 5000}, 422,
     "invalid_request"),
    ("/v1/outpaint", {"image_url": "{big}", "extend_pixels": 1024}, 400, "image_too_large"),
])
def test_bad_enhancement_requests_are_refused_and_write_nothing(media_app, path, body,
                                                               status, code):
    names = {"source": upload(media_app), "big": upload(media_app, picture(3800, 8))}
    body = {k: v.format(**names) if isinstance(v, str) else v for k, v in body.items()}
    before = stored_files(media_app)
    reply = media_app.post(path, json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["code"] == code
    assert stored_files(media_app) == before


def test_capabilities_name_the_model_or_fallback_each_feature_uses(media_app):
    features = media_app.get("/v1/capabilities").json()["capabilities"]
    assert {"enhance_photo", "enhance_restore", "enhance_faces", "upscale",
            "background_remove", "background_replace", "background_blur", "outpaint",
            "inpaint"} <= set(features)
    assert features["upscale"]["model"] == TINY_UPSCALER
    assert features["inpaint"] == media_app.get("/v1/capabilities/inpaint").json()
    unknown = media_app.get("/v1/capabilities/teleport")
    assert unknown.status_code == 404 and "upscale" in unknown.json()["valid_features"]


def test_capabilities_change_when_the_test_pack_is_removed(registry, tmp_path):
    settings = Settings(home=tmp_path / "home")
    store = ModelStore(settings.models_dir)
    install_test_pack(store)
    executor = LocalExecutor(registry, files=FileStore(settings.home / "files"))
    with TestClient(create_app(settings, registry, executor)) as client:
        def features() -> dict:
            return client.get("/v1/capabilities").json()["capabilities"]
        installed = features()
        assert installed["upscale"]["model"] == TINY_UPSCALER
        assert installed["inpaint"]["available"] is True
        assert installed["outpaint"]["model"] == TINY_INPAINT
        assert sorted(remove_test_pack(store)) == sorted(
            ["test-sd-tiny", TINY_INPAINT, TINY_UPSCALER, "test-video-tiny",
             "test-sd-tiny-ckpt", "test-sdxl-tiny"])
        removed = features()
        assert removed["upscale"]["model"] == "classic:lanczos+sharpen"
        assert removed["inpaint"]["available"] is False and removed["inpaint"]["reason"]
        assert removed["background_replace"]["available"] is False
        assert removed["outpaint"]["model"] == "classic:opencv-telea"
        assert removed["animate"]["model"] == "motion-renderer"
        assert client.get("/v1/edit-models").json()["upscale"]["installed"] == []
    executor.close()


def test_an_upscaler_preference_is_kept_and_checked(media_app):
    models = media_app.get("/v1/edit-models").json()
    assert TINY_UPSCALER in models["upscale"]["installed"]
    assert {"photo", "restore", "faces"} <= set(models["enhance"])
    chosen = media_app.post("/v1/edit-models/preference",
                            params={"mode": "photo", "model_id": TINY_UPSCALER})
    assert chosen.json() == {"success": True, "mode": "photo", "model": TINY_UPSCALER}
    stored = media_app.app.state.homepilot.db.read(
        "SELECT model_id FROM model_preferences WHERE mode = 'photo'")
    assert stored == [(TINY_UPSCALER,)]
    assert media_app.get("/v1/edit-models").json()["enhance"]["photo"]["selected"] == \
        TINY_UPSCALER
    missing = media_app.post("/v1/edit-models/preference",
                             params={"mode": "upscale", "model_id": "RealESRGAN_x4plus"})
    assert missing.status_code == 400 and missing.json()["code"] == "model_not_installed"
    assert media_app.post("/v1/edit-models/preference",
                          json={"mode": "photo", "model_id": TINY_UPSCALER}).status_code == 422


def test_a_fetched_picture_is_not_stored_when_the_request_is_refused(media_app,
                                                                   picture_host):
    settings = media_app.app.state.homepilot.settings
    settings.fetch_allow = "127.0.0.1"
    try:
        before = stored_files(media_app)
        small = media_app.post("/v1/upscale", json={"image_url": f"{picture_host}/p.png",
                                                    "width": 10})
        wide = media_app.post("/v1/outpaint", json={"image_url": f"{picture_host}/p.png",
                                                    "extend_pixels": 64})
    finally:
        settings.fetch_allow = ""
    assert small.status_code == 400 and small.json()["code"] == "invalid_size"
    assert wide.status_code == 200  # the same picture is fine where the request is
    assert len(stored_files(media_app)) == len(before) + 2  # its source and its result


def test_a_truncated_picture_is_a_400_not_a_crash(media_app):
    from tests.server.media import png

    whole = png(picture(64, 48))
    reply = media_app.post("/upload", files={"file": ("cut.png", whole[:len(whole) // 2],
                                                      "image/png")})
    assert reply.status_code == 201  # its header says PNG
    url = "/files/" + reply.json()["url"].rsplit("/files/", 1)[1]
    before = stored_files(media_app)
    for path in ("/v1/upscale", "/v1/enhance", "/v1/background", "/v1/outpaint"):
        refused = media_app.post(path, json={"image_url": url})
        assert refused.status_code == 400 and refused.json()["code"] == "not_an_image"
    assert stored_files(media_app) == before
