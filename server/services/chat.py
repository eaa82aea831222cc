"""POST /chat: a HomePilot chat request becomes a run of graphs/chat.yaml (or
chat_remote.yaml for a remote provider), with the conversation's recent history."""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.fetch import FetchError, check_url
from engine.graph import Graph
from server.errors import ApiError
from server.services import knowledge, personalities
from server.services.graphs import graph_path, load_named
from server.services.persona import prepare as persona_context
from server.state import AppState
from server.storage.conversations import produced_files

HISTORY_LIMIT = 8
FUN_SYSTEM = ("You are HomePilot in fun mode: playful, witty and upbeat, with a light touch "
              "of humour, while still answering the question.")
MEDIA_MODES = {"imagine": "Image generation", "edit": "Image editing",
               "animate": "Video generation"}
# A picture reference: an http(s) URL (HomePilot's only form), a /files/ URL or an upload id.
_URL = re.compile(r"https?://\S+|/files/f_[0-9a-f]{20}|\bf_[0-9a-f]{20}")
_ANIMATE = re.compile(r"\b(animate|make (a )?video|image\s*to\s*video)\b", re.I)
_EDIT = re.compile(r"\b(edit|inpaint|replace|remove|change)\b", re.I)
_IMAGINE = re.compile(r"\b(imagine|generate|create|draw|make)\b.*?(photo|picture|image|pic|art)\b",
                      re.I)


class ChatIn(BaseModel):
    """The HomePilot ``ChatIn`` body. Media fields (img*, vid*, ...) are accepted and
    used by the media graphs."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    message: str = Field(min_length=1, max_length=100_000)
    conversation_id: str | None = Field(None, max_length=200)
    project_id: str | None = None
    fun_mode: bool = False
    mode: str | None = None
    provider: Literal["openai_compat", "ollama", "openai", "claude", "watsonx"] | None = None
    provider_base_url: str | None = None
    provider_model: str | None = None
    provider_api_key: str | None = None
    textTemperature: float | None = Field(None, ge=0, le=2)  # noqa: N815 (wire name)
    textMaxTokens: int | None = Field(None, ge=1, le=32768)  # noqa: N815
    extra_system_context: str | None = None
    personalityId: str | None = Field(None, max_length=200)  # noqa: N815
    nsfwMode: bool = False  # noqa: N815
    incognito: bool = False
    # Image fields (imagine, edit). Sizes are honoured with imgPreset "custom" or no preset.
    imgWidth: int | None = Field(None, ge=64, le=2048)  # noqa: N815
    imgHeight: int | None = Field(None, ge=64, le=2048)  # noqa: N815
    imgSteps: int | None = Field(None, ge=1, le=150)  # noqa: N815
    imgCfg: float | None = Field(None, ge=0, le=30)  # noqa: N815
    imgSeed: int | None = Field(None, ge=-1, le=2**31 - 1)  # noqa: N815
    imgModel: str | None = Field(None, max_length=200)  # noqa: N815
    imgBatchSize: int = Field(1, ge=1, le=4)  # noqa: N815
    imgPreset: str | None = Field(None, max_length=20)  # noqa: N815
    imgAspectRatio: str | None = Field(None, max_length=10)  # noqa: N815
    imgReference: str | None = Field(None, max_length=4096)  # noqa: N815
    imgRefStrength: float = Field(0.35, ge=0, le=1)  # noqa: N815
    promptRefinement: bool = True  # noqa: N815
    # Video fields (animate).
    vidSeconds: int | None = Field(None, ge=1, le=30)  # noqa: N815
    vidFps: int | None = Field(None, ge=1, le=60)  # noqa: N815
    vidMotion: str | None = Field(None, max_length=40)  # noqa: N815
    vidModel: str | None = Field(None, max_length=200)  # noqa: N815
    vidPreset: str | None = Field(None, max_length=20)  # noqa: N815
    vidAspectRatio: str | None = Field(None, max_length=10)  # noqa: N815
    vidSteps: int | None = Field(None, ge=1, le=100)  # noqa: N815
    vidCfg: float | None = Field(None, ge=0, le=20)  # noqa: N815
    vidDenoise: float | None = Field(None, ge=0, le=1)  # noqa: N815
    vidSeed: int | None = Field(None, ge=-1, le=2**31 - 1)  # noqa: N815
    vidNegativePrompt: str | None = Field(None, max_length=4000)  # noqa: N815
    vidWidth: int | None = Field(None, ge=64, le=1536)  # noqa: N815
    vidHeight: int | None = Field(None, ge=64, le=1536)  # noqa: N815


# Fields a request may set that a mode cannot apply, with the reason. They are reported in
# ``media.ignored`` (never echoed as if applied) when the request set them.
_REFINEMENT = ("prompt refinement is not available on this server yet: the prompt was "
               "used as written")
_NO_LLM = "edits run on the image model: no chat provider is used"
NOT_APPLIED: dict[str, dict[str, str]] = {
    "imagine": {},
    "edit": {"promptRefinement": _REFINEMENT, "provider": _NO_LLM, "provider_base_url": _NO_LLM,
             "provider_model": _NO_LLM},
    "animate": {"promptRefinement": _REFINEMENT,
                "vidDenoise": "image to video starts from noise conditioned on the still: "
                              "there is no denoise setting to apply",
                "vidNegativePrompt": "the video renderers take no prompt, so no negative "
                                     "prompt either"},
}


# Imagine's chat-provider fields serve prompt refinement only.
_REFINER_FIELDS = ("provider", "provider_base_url", "provider_model", "ollama_base_url",
                   "ollama_model", "llm_base_url", "llm_model", "nsfwMode")


def _not_applied(body: BaseModel, mode: str) -> dict[str, str]:
    rules = dict(NOT_APPLIED.get(mode, {}))
    if mode == "imagine":
        referenced = bool(getattr(body, "imgReference", None))
        if referenced:
            rules["promptRefinement"] = ("a picture drawn from a reference keeps the prompt "
                                         "as written")
        if referenced or not getattr(body, "promptRefinement", True):
            rules.update({name: "prompt refinement is off, and only the refiner uses it"
                          for name in _REFINER_FIELDS})
    return rules


def ignored(body: BaseModel, mode: str) -> list[dict[str, str]]:
    """``[{field, reason}]`` for what the request set but ``mode`` does not apply
    (``promptRefinement: false`` asks for nothing, so it is not listed)."""
    found = []
    for name, reason in _not_applied(body, mode).items():
        value = getattr(body, name, None)
        if name in body.model_fields_set and value not in (None, False, ""):
            found.append({"field": name, "reason": reason})
    return found


class ChatOut(BaseModel):
    conversation_id: str
    text: str
    media: dict[str, Any] | None = None


def route(body: ChatIn) -> str:
    """chat, or the media mode the request or its wording asks for (HomePilot's rules)."""
    mode = (body.mode or "chat").lower()
    if mode in MEDIA_MODES:
        return mode
    has_url = bool(_URL.search(body.message))
    if has_url and _ANIMATE.search(body.message):
        return "animate"
    if has_url and _EDIT.search(body.message):
        return "edit"
    if _IMAGINE.search(body.message):
        return "imagine"
    return "chat"


def require_media_graph(state: AppState, mode: str) -> None:
    try:
        graph_path(state.graphs_dir, mode)
    except ApiError:
        raise ApiError(503, "feature_unavailable",
                       f"{MEDIA_MODES[mode]} (mode '{mode}') is not available on this server "
                       f"yet: graphs/{mode}.yaml is not installed") from None


def plan(state: AppState, body: ChatIn) -> tuple[str, Graph, dict[str, Any]]:
    """(conversation id, graph, graph inputs) for a chat-mode request."""
    # "persona:<project>": the persona's prompt, memories and session (sets project_id and
    # the session's conversation_id); empty for other chats.
    persona_system = persona_context(state, body)
    conversation_id = body.conversation_id or str(uuid.uuid4())
    history = [{"role": m.role, "content": m.content}
               for m in state.conversations.recent(conversation_id, HISTORY_LIMIT)
               if m.role in ("user", "assistant", "system")]
    persona = personalities.system_prompt(body.personalityId, body.nsfwMode) \
        if body.personalityId and not body.personalityId.startswith("persona:") \
        else persona_system
    system = "\n\n".join(p for p in (persona, FUN_SYSTEM if body.fun_mode else "",
                                     body.extra_system_context or "") if p)
    temperature = body.textTemperature if body.textTemperature is not None else \
        (0.9 if body.fun_mode else 0.7)
    inputs: dict[str, Any] = {"message": body.message, "history": history, "system": system,
                              "temperature": temperature,
                              "max_tokens": body.textMaxTokens or 900}
    if body.project_id:  # the project handler (API-CONTRACT §2.3): its knowledge base
        return conversation_id, *knowledge.plan(state, body.project_id, inputs)
    if body.provider_base_url:
        if not body.provider_model:
            raise ApiError(400, "provider_model_required",
                           "provider_base_url needs provider_model (the provider's model name)")
        _check_provider_url(state, body.provider_base_url)
        inputs.update(base_url=body.provider_base_url, model=body.provider_model,
                      api_key=body.provider_api_key or "",
                      provider=body.provider or "openai_compat")
        return conversation_id, load_named(state.graphs_dir, "chat_remote"), inputs
    if body.provider_model:
        inputs["model"] = body.provider_model
    return conversation_id, load_named(state.graphs_dir, "chat"), inputs


def _check_provider_url(state: AppState, base_url: str) -> None:
    """A provider URL from the request passes the outbound guard before any run starts
    (the node checks again: graphs posted to /runs reach it without this service)."""
    settings = state.settings
    try:
        check_url(base_url, settings.fetch_allow_list(), settings.trusted_urls())
    except FetchError as exc:
        raise ApiError(400, exc.code, f"provider_base_url: {exc}") from None


def remember(state: AppState, body: ChatIn, conversation_id: str, text: str,
             media: dict[str, Any] | None = None) -> None:
    """Store both turns; an incognito chat stores nothing, and the media it made are kept
    only for ``incognito_ttl`` seconds (long enough to be seen)."""
    if body.incognito:
        state.expiring.add(produced_files(media), state.settings.incognito_ttl)
        return
    state.conversations.add(conversation_id, [("user", body.message, None),
                                              ("assistant", text, media)], body.project_id)
