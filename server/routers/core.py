"""Core information endpoints: providers, settings, models, detailed health."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from engine.fetch import FetchError, read_capped, request_url
from engine.models.store import ModelNotFoundError
from server.deps import State
from server.errors import ApiError
from server.state import AppState
from server.version import VERSION

router = APIRouter(tags=["core"])
REMOTE = ("openai_compat", "ollama", "openai", "claude", "watsonx")


def providers(state: AppState) -> dict[str, Any]:
    settings = state.settings
    try:  # the model a chat without provider_model gets
        default_llm = state.model_store.default("llm").id
    except ModelNotFoundError:
        default_llm = ""
    entries: dict[str, Any] = {
        "local": {"label": "HomePilot (this server)", "base_url": "",
                  "default_model": default_llm,
                  "capabilities": {"chat": True, "models_list": True, "images": False,
                                   "video": False, "multimodal": False}},
        "openai_compat": {"label": "OpenAI-compatible (vLLM, LM Studio, ...)",
                          "base_url": settings.llm_base_url, "default_model": "",
                          "capabilities": {"chat": True, "models_list": True, "images": False,
                                           "video": False, "multimodal": False}},
        "ollama": {"label": "Ollama", "base_url": settings.ollama_base_url,
                   "default_model": "",
                   "capabilities": {"chat": True, "models_list": True, "images": False,
                                    "video": False, "multimodal": True}},
        "openai": {"label": "OpenAI", "base_url": "https://api.openai.com/v1",
                   "default_model": "gpt-4o-mini",
                   "capabilities": {"chat": True, "models_list": True, "images": False,
                                    "video": False, "multimodal": True}},
    }
    return entries


@router.get("/providers")
def get_providers(state: State) -> dict[str, Any]:
    entries = providers(state)
    return {"ok": True, "default": "local", "available": sorted(entries), "providers": entries}


@router.get("/settings")
def get_settings_view(state: State) -> dict[str, Any]:
    settings = state.settings
    return {"ok": True, "default_provider": "local", "providers": providers(state),
            "public_base_url": settings.public_base_url, "llm_base_url": settings.llm_base_url,
            "llm_model": providers(state)["local"]["default_model"],
            "media_base_url": settings.public_base_url,
            "upload_dir": str(state.files.root), "max_upload_mb": settings.max_upload_mb}


@router.get("/models")
async def get_models(state: State, provider: str = "local", base_url: str | None = None,
                     model_type: str | None = Query(None, max_length=40)) -> dict[str, Any]:
    """Installed models (``provider=local``), or a remote provider's model list."""
    if provider == "local":
        installed = state.model_store.list(model_type) if model_type else state.model_store.list()
        return {"ok": True, "provider": "local", "base_url": "",
                "models": [m.id for m in installed], "count": len(installed),
                "installed": [m.model_dump(include={"id", "kind", "format", "size_bytes",
                                                    "bundled", "test"}) for m in installed]}
    if provider not in REMOTE:
        raise ApiError(400, "unsupported_provider",
                       f"Provider '{provider}' is not supported for model listing.")
    configured = (providers(state).get(provider, {}).get("base_url") or "").rstrip("/")
    url = (base_url or configured).strip().rstrip("/")
    if not url:
        raise ApiError(400, "base_url_required", f"give base_url for provider '{provider}'")
    listing = f"{url}/api/tags" if provider == "ollama" else f"{url}/models"
    # A stored key goes only to the URL it was configured for, never to one a caller names.
    key = await asyncio.to_thread(state.api_keys.key, "openai_compat") \
        if provider == "openai_compat" and url == configured else None
    data = await asyncio.to_thread(_model_list, state, provider, listing, key)
    entries = data.get("models" if provider == "ollama" else "data")
    entries = [m for m in entries if isinstance(m, dict)] if isinstance(entries, list) else []
    names = [m.get("name") or m.get("model") if provider == "ollama" else m.get("id")
             for m in entries]
    names = [n for n in names if isinstance(n, str) and n]
    return {"ok": True, "provider": provider, "base_url": url, "models": names,
            "count": len(names)}


def _model_list(state: AppState, provider: str, listing: str, key: str | None) -> Any:
    """GET a provider's model list through the guarded client (caller-given URLs may not
    reach private addresses unless allow-listed)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with request_url("GET", listing, timeout=5, headers=headers,
                         settings=state.settings) as reply:
            if reply.status_code >= 400:
                raise ApiError(502, "models_unavailable",
                               f"{provider} at {listing} answered {reply.status_code}")
            data = json.loads(read_capped(reply, 4 * 1024**2))
    except FetchError as exc:
        status = 400 if exc.code in ("url_not_allowed", "invalid_url") else 502
        raise ApiError(status, exc.code if status == 400 else "models_unavailable",
                       f"{provider} at {listing}: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # not JSON, or nested past Python's stack
        raise ApiError(502, "models_unavailable",
                       f"{provider} at {listing} did not answer with a model list") from exc
    if not isinstance(data, dict):
        raise ApiError(502, "models_unavailable",
                       f"{provider} at {listing} did not answer with a model list")
    return data


async def _probe(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            reply = await client.get(url)
        return {"ok": reply.status_code < 400, "url": url, "status": reply.status_code}
    except httpx.HTTPError as exc:
        return {"ok": False, "url": url, "message": f"{type(exc).__name__}: {exc}"}


def _database(state: AppState) -> dict[str, Any]:
    try:
        state.db.read("SELECT 1")
        return {"ok": True, "path": str(state.db.path), "fts": state.db.fts}
    except Exception as exc:  # the check reports any failure rather than raising it
        return {"ok": False, "message": f"{type(exc).__name__}: {exc}"}


def _files(state: AppState) -> dict[str, Any]:
    try:
        state.files.root.mkdir(parents=True, exist_ok=True)
        probe = state.files.root / f".probe-{secrets.token_hex(4)}"
        probe.write_bytes(b"ok")
        probe.unlink()
        return {"ok": True, "path": str(state.files.root)}
    except OSError as exc:
        return {"ok": False, "path": str(state.files.root), "message": str(exc)}


@router.get("/health/detailed")
async def health_detailed(state: State) -> JSONResponse:
    """Real checks; 503 when the database, file store or engine is not working."""
    engine = await asyncio.to_thread(state.executor.status)
    services = {
        "backend": {"ok": True, "service": "homepilot-backend", "version": VERSION},
        "database": await asyncio.to_thread(_database, state),
        "files": await asyncio.to_thread(_files, state),
        "engine": {"ok": True, "executor": engine["executor"],
                   "ray_address": engine.get("ray_address"),
                   "cluster_resources": engine.get("cluster_resources", {}),
                   "available_resources": engine.get("available_resources", {})},
        "models": {"ok": bool(state.model_store.list("llm")),
                   "installed": len(state.model_store.list()),
                   "hosts": engine.get("models", [])},
        "llm": await _probe(f"{state.settings.llm_base_url.rstrip('/')}/models"),
    }
    healthy = all(services[name]["ok"] for name in ("database", "files", "engine", "models"))
    body = {"ok": healthy, "services": services, "timestamp": int(time.time())}
    return JSONResponse(body, status_code=200 if healthy else 503)
