"""OpenAI-compatible chat API: ``GET /v1/models``, ``POST /v1/chat/completions``.

Both run ``graphs/chat.yaml``; the official ``openai`` client works against them unchanged.
A persona project is a model too: ``model: "persona:<project id>"`` answers as the persona,
told its memories and last session (``GET /v1/models`` lists the personas whose
``shared_api.enabled`` is set).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.models.store import ModelNotFoundError
from server.deps import State
from server.errors import ApiError, ErrorBody
from server.services import knowledge, persona
from server.services.graphs import load_named
from server.services.runs import stream, until_done
from server.state import AppState
from server.streaming import SSE_EVENT, RunStream

router = APIRouter(tags=["openai"])
DEFAULT_NAMES = {"", "default", "homepilot"}


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send more than we use
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="only one choice is supported")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """OpenAI's error shape, which its clients read (422 is still ours: ``ErrorBody``)."""

    error: OpenAIErrorDetail


_REFUSED = {"model": OpenAIError}
COMPLETION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "a chat.completion, or with ``stream`` its chunks as server-sent "
                         "events", "content": {"text/event-stream": SSE_EVENT}},
    # A body that is not even text (not UTF-8) is refused before this route runs: ours.
    400: {"model": OpenAIError | ErrorBody, "description": "the messages cannot be "
                                                         "answered, or the body is unreadable"},
    404: {**_REFUSED, "description": "no installed model has that name"},
    499: {**_REFUSED, "description": "the run was cancelled (the server is stopping)"},
    502: {**_REFUSED, "description": "the model failed"}}


def _error(status: int, message: str, param: str | None = None,
           code: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                   "code": code}}, status_code=status)


def _model_id(state: AppState, requested: str) -> str:
    """The installed model a request names (``default`` picks one); raises
    ModelNotFoundError with the installed list."""
    return state.model_store.resolve("llm", "" if requested in DEFAULT_NAMES else requested).id


def _inputs(request: ChatRequest, model: str) -> dict[str, Any]:
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in request.messages]
    last = messages[-1]
    history = messages[:-1] if last["role"] == "user" else messages
    message = last["content"] if last["role"] == "user" else ""
    inputs: dict[str, Any] = {"message": message, "history": history, "system": "",
                              "model": model}
    if request.temperature is not None:
        inputs["temperature"] = request.temperature
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        inputs["max_tokens"] = limit
    if request.stop:
        inputs["stop"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.seed is not None:
        inputs["seed"] = request.seed
    return inputs


@router.get("/v1/models")
def list_models(state: State) -> dict[str, Any]:
    shared = [p for p in state.projects.list() if p.project_type == "persona"
              and isinstance(p.extra.get("shared_api"), dict)
              and p.extra["shared_api"].get("enabled")]
    return {"object": "list", "data": [
        {"id": m.id, "object": "model", "created": 0, "owned_by": "homepilot"}
        for m in state.model_store.list("llm")] + [
        {"id": f"{persona.PREFIX}{p.id}", "object": "model", "created": int(p.created_at),
         "owned_by": "homepilot-persona"} for p in shared]}


@router.post("/v1/chat/completions", response_model=None, responses=COMPLETION_RESPONSES)
async def chat_completions(request: ChatRequest, state: State) -> Any:
    chosen = request.model[len(persona.PREFIX):] \
        if request.model.startswith(persona.PREFIX) else None
    try:
        model = _model_id(state, "" if chosen is not None else request.model)
    except ModelNotFoundError as exc:
        return _error(404, str(exc), "model", "model_not_found")
    if request.messages[-1].role not in ("user", "tool") and not request.messages[-1].text():
        return _error(400, "the last message must carry content", "messages")
    graph, inputs = load_named(state.graphs_dir, "chat"), _inputs(request, model)
    if chosen is not None:
        try:
            found = await asyncio.to_thread(persona.persona, state, chosen)
        except ApiError as exc:
            return _error(exc.status, exc.message, "model", exc.code)
        # The client keeps the conversation: no session is opened, memories are read
        # (and reinforced) but nothing new is learned from a stateless API turn.
        inputs["system"] = await asyncio.to_thread(persona.system_prompt, state, found,
                                                   inputs["message"], None)
        model = request.model
    if project := getattr(request, "project", None):  # a project's knowledge base answers
        graph, inputs = await asyncio.to_thread(knowledge.plan, state, str(project), inputs)
    record = await asyncio.to_thread(state.runs.start, graph, inputs)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if request.stream:
        return RunStream(_chunks(record.handle, completion_id, created, model), record.handle)
    await until_done(record.handle, 3600)
    result = record.handle.result(0)
    if result.error is not None and result.error.error_type == "PromptTooLong":
        return _error(400, result.error.message, "messages", "context_length_exceeded")
    if result.status != "success":
        message = result.error.message if result.error else result.status
        return _error(502 if result.error else 499, f"the chat graph did not finish: {message}",
                      kind="server_error", code=result.status)
    outputs = result.outputs
    return {"id": completion_id, "object": "chat.completion", "created": created,
            "model": model if chosen is not None else outputs["model"],
            "choices": [{"index": 0, "finish_reason": outputs["finish_reason"],
                         "message": {"role": "assistant", "content": outputs["text"]},
                         "logprobs": None}],
            "usage": _usage(outputs["usage"])}


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    return {"prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "total_tokens": int(usage.get("total_tokens", 0))}


async def _chunks(handle: Any, completion_id: str, created: int,
                  model: str) -> AsyncIterator[str]:
    def frame(delta: dict[str, Any], finish: str | None = None,
              usage: dict[str, int] | None = None) -> str:
        body: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk",
                                "created": created, "model": model,
                                "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish, "logprobs": None}]}
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    yield frame({"role": "assistant", "content": ""})
    streamed = False
    async for event in stream(handle):
        if event.type == "node_progress" and event.data.get("text"):
            streamed = True
            yield frame({"content": event.data["text"]})
        elif event.type == "run_finished":
            outputs = (await asyncio.to_thread(handle.result, 5)).outputs
            if not streamed and outputs["text"]:
                # A reply served from the cache streams no tokens: send it whole.
                yield frame({"content": outputs["text"]})
            yield frame({}, outputs["finish_reason"], _usage(outputs["usage"]))
        elif event.type in ("run_failed", "run_cancelled"):
            error = event.data.get("error") or {}
            payload = {"error": {"message": error.get("message", event.type),
                                 "type": "server_error", "code": event.type}}
            yield f"data: {json.dumps(payload)}\n\n"
    yield "data: [DONE]\n\n"
