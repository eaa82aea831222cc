"""API keys for model sources and providers: stored encrypted, shown masked, testable."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import BaseModel, Field

from server.deps import State
from server.errors import ApiError
from server.state import AppState
from server.storage.api_keys import PROVIDERS

router = APIRouter(tags=["settings"])
NOTE = ("API keys are optional: they unlock gated Hugging Face models, Civitai downloads "
        "and OpenAI-compatible providers. Stored keys are encrypted on disk.")


class KeyIn(BaseModel):
    provider: str
    key: str = Field(min_length=8, max_length=4096, pattern=r"^\S+$")


class KeyTest(BaseModel):
    provider: str
    key: str | None = Field(None, min_length=1, max_length=4096)


def _provider(name: str) -> str:
    if name not in PROVIDERS:
        raise ApiError(400, "unknown_provider", f"Unknown provider: {name}. Use one of: "
                       f"{', '.join(PROVIDERS)}.")
    return name


@router.get("/settings/api-keys")
def list_keys(state: State) -> dict[str, Any]:
    return {"ok": True, "keys": {p: state.api_keys.status(p).model_dump() for p in PROVIDERS},
            "note": NOTE}


@router.post("/settings/api-keys")
def save_key(body: KeyIn, state: State) -> dict[str, Any]:
    provider = _provider(body.provider)
    state.api_keys.save(provider, body.key)
    return {"ok": True, "message": f"API key for {provider} saved successfully",
            "status": state.api_keys.status(provider).model_dump()}


@router.delete("/settings/api-keys/{provider}")
def delete_key(provider: str, state: State) -> dict[str, Any]:
    deleted = state.api_keys.delete(_provider(provider))
    return {"ok": True, "deleted": deleted,
            "message": f"API key for {provider} " + ("removed" if deleted else "was not set")}


def _check_url(state: AppState, provider: str) -> str:
    settings = state.settings
    return {"huggingface": f"{settings.huggingface_url.rstrip('/')}/api/whoami-v2",
            "civitai": f"{settings.civitai_url.rstrip('/')}/api/v1/me",
            "openai_compat": f"{settings.llm_base_url.rstrip('/')}/models"}[provider]


@router.post("/settings/api-keys/test")
async def test_key(body: KeyTest, state: State) -> dict[str, Any]:
    """Asks the provider who the key belongs to; the answer is in ``valid``."""
    provider = _provider(body.provider)
    key = body.key or await asyncio.to_thread(state.api_keys.key, provider)
    if not key:
        return {"ok": True, "valid": False, "message": f"no {provider} key is configured"}
    url = _check_url(state, provider)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.get(url, headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        return {"ok": True, "valid": False,
                "message": f"{provider} at {url} is unreachable: {type(exc).__name__}"}
    if reply.status_code in (401, 403):
        return {"ok": True, "valid": False, "message": f"{provider} rejected the key"}
    if reply.status_code >= 400:
        return {"ok": True, "valid": False,
                "message": f"{provider} at {url} answered {reply.status_code}"}
    try:  # the name is a nicety: the 2xx already accepted the key
        data = reply.json() if "json" in reply.headers.get("content-type", "") else {}
    except (ValueError, RecursionError):
        data = {}
    username = data.get("name") or data.get("username") if isinstance(data, dict) else None
    result: dict[str, Any] = {"ok": True, "valid": True, "message": f"{provider} accepted the key"}
    if username:
        result["username"] = username
    return result
