"""Built-in chat personalities: the full PersonalityAgent definitions (system prompt,
conversation dynamics, opening and follow-up templates, voice and response style, safety
gate, tools). Adult ones need nsfwMode."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from server.errors import ApiError

DATA = Path(__file__).resolve().parent.parent / "data" / "personalities.json"
Category = Literal["general", "kids", "wellness", "adult"]


class VoiceStyle(BaseModel):
    """Hints for text to speech."""

    rate_bias: float = Field(1.0, ge=0.5, le=2.0)
    pitch_bias: float = Field(1.0, ge=0.5, le=2.0)
    pause_style: Literal["natural", "dramatic", "rapid", "calm"] = "natural"


class ResponseStyle(BaseModel):
    max_length: Literal["short", "medium", "long"] = "short"
    tone: str = "friendly"
    use_emoji: bool = False


class Safety(BaseModel):
    requires_adult_gate: bool = False
    allow_explicit: bool = False
    content_warning: str | None = None


class Dynamics(BaseModel):
    initiative: Literal["passive", "balanced", "proactive", "leading"] = "balanced"
    speak_listen_ratio: float = Field(1.0, ge=0.1, le=5.0)
    depth: Literal["surface", "moderate", "deep", "exhaustive"] = "moderate"
    emotional_base: str = "warm"
    mirror_emotion: bool = False
    intensity_pattern: Literal["steady", "building", "waves", "responsive"] = "steady"


class Opening(BaseModel):
    style: Literal["greeting", "question", "statement", "observation", "game_start"] = \
        "greeting"
    templates: list[str] = []
    acknowledge_return: bool = True


class Silence(BaseModel):
    wait_seconds: float = Field(5.0, ge=1.0, le=30.0)
    on_minimal_response: Literal["probe_deeper", "change_topic", "offer_options",
                                 "share_thought"] = "probe_deeper"
    re_engage_templates: list[str] = []


class FollowUp(BaseModel):
    delay_turns: int = Field(3, ge=1)
    templates: list[str] = []
    use_specific_callbacks: bool = True


class EngagementHook(BaseModel):
    trigger: Literal["silence", "topic_exhausted", "emotional_peak", "random", "on_answer"]
    template: str
    probability: float = Field(0.3, ge=0.0, le=1.0)


class PersonalityAgent(BaseModel):
    """One personality, as GET /api/personalities/{id} shows it."""

    id: str
    label: str
    category: Category = "general"
    system_prompt: str
    psychology_approach: str = ""
    key_techniques: list[str] = []
    unique_behaviors: list[str] = []
    dynamics: Dynamics = Dynamics()
    opening: Opening = Opening()
    silence: Silence = Silence()
    follow_up: FollowUp = FollowUp()
    engagement_hooks: list[EngagementHook] = []
    empathy_phrases: list[str] = []
    affirmations: list[str] = []
    active_listening_cues: list[str] = []
    investment_phrases: list[str] = []
    voice_style: VoiceStyle = VoiceStyle()
    response_style: ResponseStyle = ResponseStyle()
    safety: Safety = Safety()
    allowed_tools: list[str] = []
    image_style_hint: str | None = None

    def summary(self) -> dict[str, Any]:
        """The list entry of GET /api/personalities."""
        return {**self.model_dump(include={"id", "label", "category", "psychology_approach",
                                           "voice_style", "response_style", "safety",
                                           "allowed_tools"}),
                "dynamics": self.dynamics.model_dump(include={"initiative", "depth",
                                                              "emotional_base"})}


@lru_cache(maxsize=1)
def personalities() -> dict[str, PersonalityAgent]:
    return {p["id"]: PersonalityAgent.model_validate(p) for p in json.loads(DATA.read_text())}


def listing(category: str | None = None) -> list[dict[str, Any]]:
    """Every personality (of one category), sorted by label."""
    found = sorted(personalities().values(), key=lambda p: p.label.lower())
    return [p.summary() for p in found if category is None or p.category == category]


def missing(personality_id: str) -> ApiError:
    # ``detail`` too: the reference answers {"detail": "Personality 'x' not found"}.
    message = f"Personality '{personality_id}' not found"
    return ApiError(404, "personality_not_found",
                    f"{message} (known: {', '.join(sorted(personalities()))})",
                    detail=message)


def definition(personality_id: str) -> PersonalityAgent:
    found = personalities().get(personality_id)
    if found is None:
        raise missing(personality_id)
    return found


def system_prompt(personality_id: str, nsfw_mode: bool) -> str:
    """The personality's system prompt; 404 for unknown ids, 403 for gated ones."""
    found = definition(personality_id)
    if found.safety.requires_adult_gate and not nsfw_mode:
        raise ApiError(403, "adult_content_disabled",
                       f"Personality '{personality_id}' is for adults: enable nsfwMode")
    return found.system_prompt
