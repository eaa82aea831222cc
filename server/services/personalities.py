"""Built-in chat personalities: a system prompt each; adult ones need nsfwMode."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from server.errors import ApiError

DATA = Path(__file__).resolve().parent.parent / "data" / "personalities.json"


class Personality(BaseModel):
    id: str
    label: str
    category: str
    adult_gate: bool
    system_prompt: str


@lru_cache(maxsize=1)
def personalities() -> dict[str, Personality]:
    return {p["id"]: Personality.model_validate(p) for p in json.loads(DATA.read_text())}


def system_prompt(personality_id: str, nsfw_mode: bool) -> str:
    """The personality's system prompt; 404 for unknown ids, 403 for gated ones."""
    found = personalities().get(personality_id)
    if found is None:
        raise ApiError(404, "personality_not_found",
                       f"Personality '{personality_id}' not found (known: "
                       f"{', '.join(sorted(personalities()))})")
    if found.adult_gate and not nsfw_mode:
        raise ApiError(403, "adult_content_disabled",
                       f"Personality '{personality_id}' is for adults: enable nsfwMode")
    return found.system_prompt
