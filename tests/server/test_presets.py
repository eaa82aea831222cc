"""Image and video presets, and the model catalog."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.parametrize("executor", ["local"], indirect=True)


def test_image_presets_follow_the_architecture(client):
    sdxl = client.get("/image-presets", params={"model": "sdxl", "aspect_ratio": "16:9"}).json()
    assert sdxl["values"] == {"steps": 30, "cfg": 5.5, "width": 1216, "height": 832}
    sd15 = client.get("/image-presets").json()
    assert sd15["values"] == {"steps": 25, "cfg": 7.0, "width": 512, "height": 512}
    assert sd15["available_presets"] == ["low", "med", "high", "ultra"]
    by_file = client.get("/image-presets", params={"model": "ponyDiffusionV6XL.safetensors",
                                                   "preset": "high"}).json()
    assert by_file["model_rules"]["architecture"] == "pony_xl"
    assert "preset_resolutions" in by_file
    flux = client.get("/image-presets", params={"model": "flux_schnell"}).json()
    assert "1:2" not in [a["id"] for a in flux["compatible_aspect_ratios"]]
    bad = client.get("/image-presets", params={"preset": "extreme"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_preset"
    assert "ultra" in bad.json()["message"]


def test_video_presets_respect_the_model_frame_rules(client):
    medium = client.get("/video-presets").json()
    assert medium["preset"] == "medium" and medium["model"] == "svd"
    assert medium["values"]["frames"] in (14, 25) and medium["values"]["fps"] == 16
    ltx = client.get("/video-presets", params={"model": "ltx", "preset": "high"}).json()
    assert (ltx["values"]["frames"] - 1) % 8 == 0 and ltx["values"]["width"] % 32 == 0
    assert client.get("/video-presets", params={"preset": "med"}).json()["preset"] == "medium"
    assert client.get("/video-presets", params={"preset": "x"}).status_code == 400
    assert client.get("/video-presets", params={"model": "x"}).status_code == 400


def test_the_model_catalog_lists_installable_models(client):
    catalog = client.get("/model-catalog").json()
    chat = catalog["providers"]["homepilot"]["chat"]
    assert any(m["id"] == "smollm2-135m-instruct" for m in chat)
    assert all({"id", "label", "install"} <= set(m) for m in chat)
