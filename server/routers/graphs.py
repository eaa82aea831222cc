"""The engine's native API: graphs, runs (with SSE and WebSocket events) and node schemas."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from engine.compiler import validate_graph
from engine.errors import ValidationIssue
from engine.graph import Graph
from engine.loader import graph_from_data
from engine.spec import NodeSpec
from server.deps import State
from server.errors import ApiError
from server.services.graphs import library_names, load_library
from server.services.runs import RunRecord, stream, until_done
from server.state import AppState
from server.streaming import SSE_RESPONSES

router = APIRouter(tags=["engine"])


class GraphSummary(BaseModel):
    name: str
    description: str
    inputs: dict[str, Any]
    outputs: list[str]
    nodes: int


class RunRequest(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: list[str] | None = None
    wait: bool = Field(False, description="answer when the run has finished")
    timeout: float = Field(600, gt=0, le=3600, description="seconds to wait when wait=true")


class GraphRunRequest(RunRequest):
    graph: dict[str, Any] = Field(description="a graph in our format or ComfyUI API format")


class ValidateRequest(BaseModel):
    graph: dict[str, Any]
    inputs: dict[str, Any] = Field(default_factory=dict)


class ValidateResponse(BaseModel):
    ok: bool
    issues: list[ValidationIssue]


class TimingView(BaseModel):
    start: float
    end: float
    seconds: float


class RunView(BaseModel):
    run_id: str
    graph: str
    status: str
    executor: str
    outputs: dict[str, Any] = {}
    ui: dict[str, Any] = {}
    executed: list[str] = []
    cached: list[str] = []
    timings: dict[str, TimingView] = {}
    error: dict[str, Any] | None = None
    events_url: str
    ws_url: str


def _view(state: AppState, record: RunRecord) -> RunView:
    handle = record.handle
    base = {"run_id": record.run_id, "graph": handle.graph, "status": handle.status,
            "executor": handle.executor, "events_url": f"/runs/{record.run_id}/events",
            "ws_url": f"/runs/{record.run_id}/ws"}
    if not record.settled():
        return RunView(**base)
    result = handle.result(0)
    outputs, ui = record.outputs_json(state.files)
    return RunView(**base, outputs=outputs, ui=ui, executed=result.executed,
                   cached=result.cached,
                   timings={n: TimingView(start=t.start, end=t.end, seconds=t.end - t.start)
                            for n, t in result.timings.items()},
                   error=result.error.model_dump() if result.error else None)


async def _start(state: AppState, graph: Graph, request: RunRequest) -> RunView:
    record = await asyncio.to_thread(state.runs.start, graph, request.inputs,
                                     outputs=request.outputs)
    if request.wait:
        done = await until_done(record.handle, request.timeout)
        if not done:
            raise ApiError(504, "run_timeout", f"run {record.run_id} is still running after "
                           f"{request.timeout:g} s; follow it at /runs/{record.run_id}")
    return await asyncio.to_thread(_view, state, record)  # pictures are encoded: not here


def _record(state: AppState, run_id: str) -> RunRecord:
    record = state.runs.get(run_id)
    if record is None:
        raise ApiError(404, "run_not_found", f"there is no run {run_id}")
    return record


def _journalled(state: AppState, run_id: str) -> RunView:
    """A run this process does not hold (it ran before a restart), from the journal."""
    entry = state.runs.journal.get(run_id) if state.runs.journal else None
    if entry is None:
        raise ApiError(404, "run_not_found", f"there is no run {run_id}")
    return RunView(run_id=run_id, graph=entry.graph, status=entry.status,
                   executor=state.executor.name, events_url=f"/runs/{run_id}/events",
                   ws_url=f"/runs/{run_id}/ws",
                   error=entry.error.model_dump() if entry.error else None)


@router.get("/graphs", response_model=list[GraphSummary])
def list_graphs(state: State) -> list[GraphSummary]:
    summaries = []
    for name in library_names(state.graphs_dir, state.settings.user_graphs_dir):
        try:
            graph = load_library(state.graphs_dir, state.settings.user_graphs_dir, name)
        except Exception:  # an unreadable file is listed by GET /graphs/{name}'s error
            continue
        summaries.append(GraphSummary(
            name=name, description=graph.description, outputs=list(graph.outputs),
            inputs={k: v.model_dump(exclude_none=True) for k, v in graph.inputs.items()},
            nodes=len(graph.nodes)))
    return summaries


@router.get("/graphs/{name:path}/runs", include_in_schema=False)
def graph_runs_get(name: str) -> None:
    raise ApiError(405, "method_not_allowed", "start a run with POST")


@router.post("/graphs/{name:path}/runs", response_model=RunView, status_code=201)
async def run_named_graph(name: str, request: RunRequest, state: State) -> RunView:
    graph = load_library(state.graphs_dir, state.settings.user_graphs_dir, name)
    return await _start(state, graph, request)


@router.get("/graphs/{name:path}", response_model=Graph)
def get_graph(name: str, state: State) -> Graph:
    return load_library(state.graphs_dir, state.settings.user_graphs_dir, name)


@router.post("/graphs/validate", response_model=ValidateResponse)
def validate(request: ValidateRequest, state: State) -> ValidateResponse:
    issues = validate_graph(graph_from_data(request.graph), state.registry, request.inputs)
    return ValidateResponse(ok=not issues, issues=issues)


@router.post("/runs", response_model=RunView, status_code=201)
async def run_posted_graph(request: GraphRunRequest, state: State) -> RunView:
    return await _start(state, graph_from_data(request.graph), request)


@router.get("/runs", response_model=list[RunView])
def list_runs(state: State) -> list[RunView]:
    return [_view(state, r) for r in state.runs.records()[-100:]]


@router.get("/runs/{run_id}", response_model=RunView)
def get_run(run_id: str, state: State) -> RunView:
    record = state.runs.get(run_id)
    return _view(state, record) if record is not None else _journalled(state, run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunView)
def cancel_run(run_id: str, state: State) -> RunView:
    record = _record(state, run_id)
    record.handle.cancel()
    return _view(state, record)


@router.get("/runs/{run_id}/events", response_class=StreamingResponse,
            responses=SSE_RESPONSES)
async def run_events(run_id: str, state: State) -> StreamingResponse:
    """Server-sent events: every event of the run so far, then live, then the stream ends."""
    record = _record(state, run_id)

    async def frames() -> Any:
        async for event in stream(record.handle):
            payload = event.model().model_dump_json()
            yield f"event: {event.type}\ndata: {payload}\n\n"
    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.websocket("/runs/{run_id}/ws")
async def run_socket(websocket: WebSocket, run_id: str, state: State) -> None:
    record = state.runs.get(run_id)
    await websocket.accept()
    if record is None:
        await websocket.send_json({"type": "error", "code": "run_not_found",
                                   "message": f"there is no run {run_id}"})
        await websocket.close(code=4404)
        return
    try:
        async for event in stream(record.handle):
            await websocket.send_text(event.model().model_dump_json())
        await websocket.close()
    except WebSocketDisconnect:
        return


@router.get("/nodes", response_model=dict[str, NodeSpec])
def node_schemas(state: State) -> dict[str, NodeSpec]:
    return {spec.type: spec for spec in state.registry.specs()}


@router.get("/nodes/{type_id}", response_model=NodeSpec)
def node_schema(type_id: str, state: State) -> NodeSpec:
    definition = state.registry.get(type_id)
    if definition is None:
        raise ApiError(404, "node_type_not_found", f"there is no node type '{type_id}'")
    return definition.spec


