"""GET /image-presets, GET /video-presets and GET /model-catalog."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query

from server.services.presets import image_preset, video_preset

router = APIRouter(tags=["presets"])
CATALOG = Path(__file__).resolve().parent.parent / "data" / "model_catalog.json"


@router.get("/image-presets")
def image_presets(model: str | None = Query(None, max_length=200),
                  preset: str | None = None, aspect_ratio: str | None = None) -> dict[str, Any]:
    return image_preset(model, preset, aspect_ratio)


@router.get("/video-presets")
def video_presets(model: str | None = None, preset: str | None = None,
                  aspect_ratio: str | None = None) -> dict[str, Any]:
    return video_preset(model, preset, aspect_ratio)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    return json.loads(CATALOG.read_text())


@router.get("/model-catalog")
def model_catalog() -> dict[str, Any]:
    return {"ok": True, **_catalog()}
