"""image.LoadUrl: a picture from an http(s) URL, under the server's fetch allow-list."""

from __future__ import annotations

import pytest

from engine.settings import get_settings


def test_load_url_node_reads_an_allowed_picture(run_node, picture_host):
    from nodes.image import LoadUrl

    settings = get_settings()
    with pytest.raises(ValueError, match="private or loopback"):
        run_node(LoadUrl, url=f"{picture_host}/p.png")
    settings.fetch_allow = "127.0.0.1"
    try:
        loaded = run_node(LoadUrl, url=f"{picture_host}/p.png")
        with pytest.raises(ValueError, match="not an image"):
            run_node(LoadUrl, url=f"{picture_host}/notes.txt")
        # Pillow reads PPM, but no decoder of the server takes it
        with pytest.raises(ValueError, match="PNG, JPEG, WEBP, GIF, BMP or TIFF"):
            run_node(LoadUrl, url=f"{picture_host}/p.ppm")
    finally:
        settings.fetch_allow = ""
    assert (loaded["width"], loaded["height"]) == (64, 48)
    assert loaded["image"].getpixel((3, 3)) == (200, 30, 90)
