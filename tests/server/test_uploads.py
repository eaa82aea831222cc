"""POST /upload: content checked by its bytes, size capped, round trip byte for byte."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.executors.local import LocalExecutor
from engine.settings import Settings
from server.app import create_app


@pytest.fixture
def uploads(registry, tmp_path):
    settings = Settings(home=tmp_path / "home", max_upload_mb=1,
                        public_base_url="http://photos.example")
    executor = LocalExecutor(registry)
    with TestClient(create_app(settings, registry, executor)) as client:
        yield client, settings.home / "files"
    executor.close()


def png_bytes(size: tuple[int, int] = (7, 5)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def stored(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_image_round_trips_byte_for_byte(uploads):
    client, folder = uploads
    data = png_bytes()
    # The name says .txt and the type says text: the bytes say PNG, and PNG it is.
    reply = client.post("/upload", files={"file": ("notes.txt", data, "text/plain")})
    assert reply.status_code == 201
    url = reply.json()["url"]
    assert url.startswith("http://photos.example/files/f_") and url.endswith(".png")
    fetched = client.get(url.removeprefix("http://photos.example"))
    assert fetched.content == data and fetched.headers["content-type"] == "image/png"


def test_an_oversize_upload_is_413_and_writes_nothing(uploads):
    client, folder = uploads
    big = png_bytes() + b"\0" * (1024 * 1024 + 1)
    reply = client.post("/upload", files={"file": ("big.png", big, "image/png")})
    assert reply.status_code == 413 and reply.json()["code"] == "file_too_large"
    assert stored(folder) == []


def test_a_file_that_is_not_an_image_is_refused(uploads):
    client, folder = uploads
    fake = client.post("/upload", files={"file": ("cat.png", b"#!/bin/sh\necho hi\n",
                                                  "image/png")})
    assert fake.status_code == 415 and fake.json()["code"] == "unsupported_media_type"
    assert client.post("/upload", files={}).status_code == 422
    assert stored(folder) == []
