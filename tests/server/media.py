"""Helpers for the media endpoint tests: pictures as bytes, uploads, and what a URL holds."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image


def picture(width: int = 64, height: int = 48) -> Image.Image:
    """A textured test picture: gradients plus a bright square in the middle."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1)
    rgb[height // 3:2 * height // 3, width // 3:2 * width // 3] = (250, 240, 20)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(client: TestClient, image: Image.Image | None = None) -> str:
    """Upload a picture; returns its relative /files/ URL."""
    reply = client.post("/upload", files={"file": ("p.png", png(image or picture()),
                                                   "image/png")})
    assert reply.status_code == 201, reply.text
    return "/files/" + reply.json()["url"].rsplit("/files/", 1)[1]


def fetched(client: TestClient, url: str) -> Image.Image:
    """The picture at a /files/ URL of the app, decoded."""
    reply = client.get(url)
    assert reply.status_code == 200, reply.text
    image = Image.open(io.BytesIO(reply.content))  # kept open: format and frames stay readable
    image.load()
    return image


def pixels(client: TestClient, url: str) -> np.ndarray:
    image = fetched(client, url)
    return np.asarray(image.convert("RGBA" if image.mode == "RGBA" else "RGB")).astype(int)


def stored_files(client: TestClient) -> list[str]:
    root = client.app.state.homepilot.files.root
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def message_count(client: TestClient) -> int:
    db = client.app.state.homepilot.db
    return db.read("SELECT count(*) FROM messages")[0][0]
