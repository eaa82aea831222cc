"""ComfyUI's HTTP API, so existing ComfyUI clients and scripts work unchanged."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import GraphLoadError, GraphValidationError
from engine.loader import graph_from_comfy
from server.deps import State
from server.editor.boot import FEATURE_FLAGS
from server.errors import ApiError
from server.serialize import read_json
from server.services import comfy
from server.services.nodestates import NodeStates, preview_frame
from server.services.runs import RunRecord
from server.state import AppState
from server.version import VERSION

router = APIRouter(tags=["comfyui"])


class PromptAccepted(BaseModel):
    prompt_id: str
    number: int
    node_errors: dict[str, Any]


class PromptIn(BaseModel):
    """POST /prompt's body. The route reads the JSON itself (a bad body gets ComfyUI's
    400 shape rather than our 422) and checks it against this."""

    model_config = ConfigDict(extra="allow")
    prompt: dict[str, Any] = Field(description="the graph in ComfyUI's API format")
    client_id: str | None = None
    prompt_id: str | int | None = None  # ComfyUI takes any id and makes it a string
    extra_data: dict[str, Any] | None = None


class ComfyErrorDetail(BaseModel):
    type: str
    message: str
    details: str
    extra_info: dict[str, Any]


class ComfyError(BaseModel):
    """ComfyUI's refusal of a prompt, which its clients read."""

    error: ComfyErrorDetail
    node_errors: dict[str, Any]


def _json_request(model: type[BaseModel], required: bool) -> dict[str, Any]:
    """``openapi_extra`` declaring the JSON body a route reads by hand."""
    return {"requestBody": {"required": required, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


def _status_message(state: AppState, client_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": len(state.runs.running())}}}
    if client_id is not None:
        data["sid"] = client_id
    return data


def _forwarder(state: AppState, holder: list[RunRecord], client_id: str | None) -> Any:
    """Turns a run's engine events into ComfyUI messages for the submitting client."""
    board: list[NodeStates] = []

    def forward(event: Any) -> None:
        if not holder:
            return
        if not board:
            board.append(NodeStates(holder[0].run_id))
        progress = board[0].update(event)
        if event.type == "node_started" and progress is not None:
            # The editor highlights a node from progress_state, before its 'executing'.
            state.hub.send("progress_state", progress, client_id)
            progress = None
        for kind, data in comfy.ws_messages(holder[0], event):
            state.hub.send(kind, data, client_id)
        if progress is not None:
            state.hub.send("progress_state", progress, client_id)
        frame = preview_frame(event)
        if frame is not None:
            state.hub.send_bytes(frame, client_id)
        if event.type in ("run_finished", "run_failed", "run_cancelled"):
            state.hub.send("status", _status_message(state))
    return forward


def needed_by(prompt: dict[str, Any], targets: list[str]) -> dict[str, Any]:
    """The part of a prompt that the target nodes need (``partial_execution_targets``)."""
    wanted: set[str] = set()
    stack = [t for t in targets if t in prompt]
    while stack:
        node_id = stack.pop()
        if node_id in wanted:
            continue
        wanted.add(node_id)
        inputs = prompt[node_id].get("inputs") if isinstance(prompt[node_id], dict) else None
        for value in (inputs or {}).values() if isinstance(inputs, dict) else ():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                stack.append(str(value[0]))
    return {k: v for k, v in prompt.items() if k in wanted}


@router.post("/prompt", response_model=PromptAccepted, openapi_extra=_json_request(PromptIn, True),
             responses={400: {"model": ComfyError, "description": "the prompt is missing, "
                                                                 "malformed or invalid"}})
async def post_prompt(request: Request, state: State) -> Any:
    try:
        body = await read_json(request)
    except ApiError as exc:
        return JSONResponse(comfy.bad_body(exc.message), status_code=400)
    if not isinstance(body, dict) or not body.get("prompt"):
        return JSONResponse(comfy.no_prompt(), status_code=400)
    prompt = body["prompt"]
    client_id = body.get("client_id")
    prompt_id = str(body.get("prompt_id") or uuid.uuid4())
    if not isinstance(prompt, dict):
        return JSONResponse(comfy.bad_body("'prompt' must be an object of nodes"), status_code=400)
    try:
        # A run keeps client_id and extra_data: of another type they broke every later
        # GET /history (a list as extra_data: 500) and the socket hub.
        PromptIn.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        return JSONResponse(comfy.bad_body(f"'{error['loc'][0]}': {error['msg']}"),
                            status_code=400)
    if state.runs.get(prompt_id) is not None:
        return JSONResponse(comfy.bad_body(f"prompt_id {prompt_id} is already used"),
                            status_code=400)
    targets = body.get("partial_execution_targets")
    if targets is not None:
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            return JSONResponse(comfy.bad_body("'partial_execution_targets' must be a list of "
                                               "node ids"), status_code=400)
        missing = [t for t in targets if t not in prompt]
        if missing:
            return JSONResponse(comfy.bad_body(f"partial_execution_targets names nodes the "
                                               f"prompt does not have: {missing[:5]}"),
                                status_code=400)
    try:
        graph = graph_from_comfy(needed_by(prompt, targets) if targets else prompt,
                                 name="prompt")
    except GraphLoadError as exc:
        return JSONResponse(comfy.bad_body(str(exc)), status_code=400)
    holder: list[RunRecord] = []
    events: list[Any] = []
    forward = _forwarder(state, holder, client_id)

    def listener(event: Any) -> None:
        # Events that arrive before the record exists are replayed once it does.
        if holder:
            forward(event)
        else:
            events.append(event)
    try:
        record = await asyncio.to_thread(
            state.runs.start, graph, run_id=prompt_id, client_id=client_id, prompt=prompt,
            extra_data=body.get("extra_data") or {}, listener=listener)
    except GraphValidationError as exc:
        outputs = [n for n, node in prompt.items() if isinstance(node, dict)
                   and (d := state.registry.get(str(node.get("class_type")))) is not None
                   and d.spec.output_node]
        return JSONResponse(comfy.prompt_errors(exc.issues, prompt, outputs), status_code=400)
    holder.append(record)
    for event in events:
        forward(event)
    state.hub.send("status", _status_message(state))
    return PromptAccepted(prompt_id=record.run_id, number=record.number, node_errors={})


@router.get("/prompt")
def get_prompt(state: State) -> dict[str, Any]:
    return {"exec_info": {"queue_remaining": len(state.runs.running())}}


def _comfy_records(state: AppState) -> list[RunRecord]:
    return [r for r in state.runs.records() if r.prompt is not None]


@router.get("/history")
def history(state: State, max_items: int | None = Query(None, ge=1)) -> dict[str, Any]:
    records = [r for r in _comfy_records(state) if r.settled()]
    if max_items is not None:
        records = records[-max_items:]
    return {r.run_id: comfy.history_entry(r) for r in records}


@router.get("/history/{prompt_id}")
def history_of(prompt_id: str, state: State) -> dict[str, Any]:
    record = state.runs.get(prompt_id)
    if record is None or record.prompt is None or not record.settled():
        return {}
    return {prompt_id: comfy.history_entry(record)}


class HistoryChange(BaseModel):
    clear: bool = False
    delete: list[str] = []


@router.post("/history")
def change_history(change: HistoryChange, state: State) -> dict[str, Any]:
    if change.clear:
        state.runs.clear_finished()
    for prompt_id in change.delete:
        record = state.runs.get(prompt_id)
        if record is not None and record.handle.done():
            state.runs.delete(prompt_id)
    return {}


def _queue_item(record: RunRecord) -> list[Any]:
    return [record.number, record.run_id, record.prompt or {}, {"client_id": record.client_id},
            record.output_nodes]


@router.get("/queue")
def queue(state: State) -> dict[str, Any]:
    running = [r for r in _comfy_records(state) if not r.handle.done()]
    # Runs start as soon as they are accepted: nothing ever waits in a pending queue.
    return {"queue_running": [_queue_item(r) for r in running], "queue_pending": []}


class QueueChange(BaseModel):
    clear: bool = False
    delete: list[str] = []


@router.post("/queue")
def change_queue(change: QueueChange, state: State) -> dict[str, Any]:
    targets = [r for r in _comfy_records(state) if not r.handle.done()] if change.clear else \
        [r for r in (state.runs.get(p) for p in change.delete) if r is not None]
    for record in targets:
        record.handle.cancel()
    return {}


class InterruptIn(BaseModel):
    prompt_id: str | None = Field(None, description="the prompt to stop; none: every one")


@router.post("/interrupt", openapi_extra=_json_request(InterruptIn, False))
async def interrupt(request: Request, state: State) -> dict[str, Any]:
    body = await read_json(request)
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    for record in _comfy_records(state):
        if not record.handle.done() and prompt_id in (None, record.run_id):
            record.handle.cancel()
    return {}


@router.get("/object_info")
def object_info(state: State) -> dict[str, Any]:
    return comfy.object_infos(state.registry.specs(), state.model_store, state.settings.input_dir)


@router.get("/object_info/{node_class}")
def object_info_of(node_class: str, state: State) -> dict[str, Any]:
    definition = state.registry.get(node_class)
    if definition is None:
        raise ApiError(404, "node_type_not_found", f"there is no node class '{node_class}'")
    return comfy.object_infos([definition.spec], state.model_store, state.settings.input_dir)


@router.get("/system_stats")
def system_stats(state: State) -> dict[str, Any]:
    import platform
    import sys

    import torch

    # argv must be a list (the editor calls argv.includes); --disable-api-nodes keeps the
    # editor from asking api.comfy.org for release notes.
    return {"system": {"os": platform.system().lower(), "python_version": sys.version,
                       "embedded_python": False, "comfyui_version": VERSION,
                       "pytorch_version": torch.__version__,
                       "argv": ["homepilot", "serve", "--disable-api-nodes"],
                       "ram_total": _meminfo("MemTotal"), "ram_free": _meminfo("MemAvailable")},
            "devices": _devices()}


def _devices() -> list[dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        return [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0,
                 "torch_vram_total": 0, "torch_vram_free": 0}]
    devices = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        devices.append({"name": torch.cuda.get_device_name(index), "type": "cuda",
                        "index": index, "vram_total": total, "vram_free": free,
                        "torch_vram_total": total, "torch_vram_free": free})
    return devices


def _is_feature_flags(text: str | None) -> bool:
    if not text or len(text) > 65536:
        return False
    try:
        message = json.loads(text)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "feature_flags"


def _meminfo(key: str) -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


@router.websocket("/ws")
async def socket(websocket: WebSocket, state: State, clientId: str | None = None) -> None:  # noqa: N803
    client_id = clientId or uuid.uuid4().hex
    await websocket.accept()
    queue = state.hub.connect(client_id)
    async def send() -> None:
        await websocket.send_text(json.dumps({"type": "status",
                                              "data": _status_message(state, client_id)}))
        while True:
            message = await queue.get()
            if isinstance(message, bytes):
                await websocket.send_bytes(message)
            else:
                await websocket.send_text(message)

    async def receive() -> None:
        # The editor opens with its feature flags and waits for ours; nothing else a
        # client sends is acted on. Reading also notices when the client goes away.
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if _is_feature_flags(message.get("text")):
                flags = {**FEATURE_FLAGS,
                         "max_upload_size": state.settings.max_upload_mb * 1024**2}
                queue.put_nowait(json.dumps({"type": "feature_flags", "data": flags}))

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        state.hub.disconnect(client_id, queue)


