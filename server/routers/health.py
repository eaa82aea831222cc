"""GET /health and GET /engine/status."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import BaseModel

from server.deps import State
from server.looplag import LagStats
from server.version import VERSION

router = APIRouter(tags=["core"])


class ProviderProbe(BaseModel):
    ok: bool
    base_url: str


class Health(BaseModel):
    ok: bool = True
    service: str = "homepilot-backend"
    version: str = VERSION
    providers: dict[str, ProviderProbe] = {}


class PackView(BaseModel):
    name: str
    api: str
    ok: bool
    error: str | None
    node_types: list[str]


class EngineStatus(BaseModel):
    ok: bool = True
    executor: str
    ray_address: str | None = None
    dashboard_url: str | None = None
    dashboard_token_file: str | None = None
    cluster_resources: dict[str, float] = {}
    available_resources: dict[str, float] = {}
    nodes: int | None = None
    cache: dict[str, int]
    node_types: int
    packs: list[PackView]
    runs_active: int
    models: list[dict[str, Any]] = []
    event_loop_lag: LagStats | None = None


@router.get("/health", response_model=Health)
async def health(state: State) -> Health:
    """Always 200 while the server runs; ``providers`` says which chat backends answer."""
    base_url = state.settings.llm_base_url
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            remote_ok = (await client.get(f"{base_url.rstrip('/')}/models")).status_code < 400
    except httpx.HTTPError:
        remote_ok = False
    return Health(providers={
        "local": ProviderProbe(ok=bool(state.model_store.list("llm")), base_url=""),
        "openai_compat": ProviderProbe(ok=remote_ok, base_url=base_url)})


@router.get("/engine/status", response_model=EngineStatus)
def engine_status(state: State) -> EngineStatus:
    info: dict[str, Any] = state.executor.status()
    return EngineStatus(
        executor=info["executor"], ray_address=info.get("ray_address"),
        dashboard_url=info.get("dashboard_url"),
        dashboard_token_file=info.get("dashboard_token_file"),
        cluster_resources=info.get("cluster_resources", {}),
        available_resources=info.get("available_resources", {}), nodes=info.get("nodes"),
        cache=info["cache"], node_types=len(state.registry),
        packs=[PackView(**p.model_dump(include={"name", "api", "ok", "error", "node_types"}))
               for p in state.registry.packs],
        runs_active=len(state.runs.running()), models=info.get("models", []),
        event_loop_lag=state.loop_lag.stats())
