"""Image enhancement (v1): capabilities, enhance, upscale, background, outpaint, and the
edit-model preferences. Each feature runs its graph from ``graphs/``."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from server.deps import State
from server.errors import ApiError
from server.services import capabilities as caps
from server.services.graphs import load_named
from server.services.media import MAX_SIDE, Source, file_url, image_size, load_source
from server.services.runs import finish
from server.state import AppState

router = APIRouter(tags=["enhance"])


class Media(BaseModel):
    images: list[str] = []
    videos: list[str] = []


class EnhanceIn(BaseModel):
    image_url: str = Field(min_length=1, max_length=4096)
    mode: Literal["photo", "restore", "faces"] = "photo"
    scale: Literal[1, 2, 4] = 4
    face_enhance: bool = False


class EnhanceOut(BaseModel):
    media: Media
    mode_used: str
    model_used: str
    original_size: tuple[int, int]
    enhanced_size: tuple[int, int]
    faces_found: int | None = None


class UpscaleIn(BaseModel):
    image_url: str = Field(min_length=1, max_length=4096)
    scale: int = Field(2, ge=1, le=4)
    model: str | None = Field(None, max_length=200, description="model id or .pth file name")
    width: int | None = Field(None, ge=1, le=MAX_SIDE)
    height: int | None = Field(None, ge=1, le=MAX_SIDE)


class UpscaleOut(BaseModel):
    media: Media
    model_used: str
    original_size: tuple[int, int]
    new_size: tuple[int, int]


class BackgroundIn(BaseModel):
    image_url: str = Field(min_length=1, max_length=4096)
    action: Literal["remove", "replace", "blur"] = "remove"
    prompt: str | None = Field(None, max_length=4000)
    negative_prompt: str = Field("blurry, low quality, distorted", max_length=4000)
    blur_strength: int = Field(15, ge=5, le=50)


class BackgroundOut(BaseModel):
    media: Media
    action_used: str
    has_alpha: bool
    original_size: tuple[int, int]
    model_used: str


class OutpaintIn(BaseModel):
    image_url: str = Field(min_length=1, max_length=4096)
    direction: Literal["left", "right", "up", "down", "all", "horizontal", "vertical"] = "all"
    extend_pixels: int = Field(256, ge=64, le=1024)
    prompt: str = Field("", max_length=4000)
    negative_prompt: str = Field("blurry, low quality, distorted, watermark", max_length=4000)


class OutpaintOut(BaseModel):
    media: Media
    direction_used: str
    original_size: tuple[int, int]
    new_size: tuple[int, int]
    extend_pixels: int
    model_used: str


_SIDES = {"left": ("left",), "right": ("right",), "up": ("top",), "down": ("bottom",),
          "horizontal": ("left", "right"), "vertical": ("top", "bottom"),
          "all": ("left", "right", "top", "bottom")}


async def _source(request: Request, state: AppState, url: str) -> Source:
    return await load_source(state, url, request.url.hostname)


def _cap(size: tuple[int, int], what: str) -> None:
    if max(size) > MAX_SIDE:
        raise ApiError(400, "image_too_large", f"the {what} would be {size[0]}x{size[1]}; "
                       f"the largest side allowed is {MAX_SIDE} px")


def _result_size(state: AppState, file_id: str) -> tuple[int, int]:
    return image_size(state.files.read(file_id), "the result")


def _upscaler_id(state: AppState, requested: str | None, mode: str) -> str:
    if not requested:
        return caps.upscaler(state, mode) or ""
    return caps.named_model(state, "upscaler", requested, "upscaler")


@router.get("/v1/capabilities")
def get_capabilities(state: State) -> dict[str, dict[str, caps.Capability]]:
    return {"capabilities": caps.capabilities(state)}


@router.get("/v1/capabilities/{feature}", response_model=caps.Capability)
def get_capability(feature: str, state: State) -> caps.Capability:
    features = caps.capabilities(state)
    if feature not in features:
        raise ApiError(404, "unknown_feature", f"Unknown feature: {feature}",
                       valid_features=list(features))
    return features[feature]


@router.post("/v1/enhance", response_model=EnhanceOut)
async def enhance(body: EnhanceIn, request: Request, state: State) -> EnhanceOut:
    scale = 1 if body.mode == "faces" else body.scale
    source = await _source(request, state, body.image_url)
    size = source.size
    _cap((size[0] * scale, size[1] * scale), "enhanced image")
    model = await asyncio.to_thread(_upscaler_id, state, None, body.mode) if scale > 1 else ""
    file_id = await source.keep(state)
    out = await finish(state.runs, load_named(state.graphs_dir, "enhance"),
                       {"image": file_id, "mode": body.mode, "scale": scale, "model": model},
                       "enhance")
    return EnhanceOut(media=Media(images=[file_url(out["file"])]), mode_used=body.mode,
                      model_used=out["method"], original_size=size,
                      enhanced_size=await asyncio.to_thread(_result_size, state, out["file"]),
                      faces_found=out["faces"] if body.mode == "faces" else None)


@router.post("/v1/upscale", response_model=UpscaleOut)
async def upscale(body: UpscaleIn, request: Request, state: State) -> UpscaleOut:
    model = await asyncio.to_thread(_upscaler_id, state, body.model, "upscale")
    source = await _source(request, state, body.image_url)
    size = source.size
    scale: float = body.scale
    if body.width or body.height:  # a target size wins over the factor, keeping the aspect
        scale = max((body.width or 0) / size[0], (body.height or 0) / size[1])
        if scale < 1:
            raise ApiError(400, "invalid_size", "width/height must not be smaller than the "
                           f"image ({size[0]}x{size[1]})")
    _cap((round(size[0] * scale), round(size[1] * scale)), "upscaled image")
    file_id = await source.keep(state)
    out = await finish(state.runs, load_named(state.graphs_dir, "upscale"),
                       {"image": file_id, "scale": scale, "model": model}, "upscale")
    return UpscaleOut(media=Media(images=[file_url(out["file"])]), model_used=out["method"],
                      original_size=size,
                      new_size=await asyncio.to_thread(_result_size, state, out["file"]))


@router.post("/v1/background", response_model=BackgroundOut)
async def background(body: BackgroundIn, request: Request, state: State) -> BackgroundOut:
    if body.action == "replace":
        if not (body.prompt or "").strip():
            raise ApiError(400, "prompt_required", "replace needs a prompt describing the new "
                           "background")
        if caps.painter(state) is None:
            raise ApiError(503, "feature_unavailable", "background replace needs a diffusion "
                           "or inpainting model; none is installed")
    source = await _source(request, state, body.image_url)
    size = source.size
    inputs: dict[str, Any] = {"image": await source.keep(state), "action": body.action,
                              "prompt": body.prompt or "",
                              "negative_prompt": body.negative_prompt,
                              "blur_strength": body.blur_strength}
    out = await finish(state.runs, load_named(state.graphs_dir, "background"), inputs,
                       "background")
    return BackgroundOut(media=Media(images=[file_url(out["file"])]), action_used=body.action,
                         has_alpha=out["has_alpha"], original_size=size,
                         model_used=out["method"])


@router.post("/v1/outpaint", response_model=OutpaintOut)
async def outpaint(body: OutpaintIn, request: Request, state: State) -> OutpaintOut:
    source = await _source(request, state, body.image_url)
    size = source.size
    sides = {side: body.extend_pixels for side in _SIDES[body.direction]}
    new_size = (size[0] + sides.get("left", 0) + sides.get("right", 0),
                size[1] + sides.get("top", 0) + sides.get("bottom", 0))
    _cap(new_size, "outpainted image")
    out = await finish(state.runs, load_named(state.graphs_dir, "outpaint"),
                       {"image": await source.keep(state), "prompt": body.prompt,
                        "negative_prompt": body.negative_prompt, **sides}, "outpaint")
    return OutpaintOut(media=Media(images=[file_url(out["file"])]),
                       direction_used=body.direction, original_size=size,
                       new_size=await asyncio.to_thread(_result_size, state, out["file"]),
                       extend_pixels=body.extend_pixels, model_used=out["method"])


@router.get("/v1/edit-models")
def get_edit_models(state: State) -> dict[str, Any]:
    return caps.edit_models(state)


@router.post("/v1/edit-models/preference")
def set_edit_model(state: State, mode: str = Query(...),
                   model_id: str = Query(..., max_length=200)) -> dict[str, Any]:
    return caps.set_preference(state, mode, model_id)
