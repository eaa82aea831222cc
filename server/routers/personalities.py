"""The built-in personalities: GET /api/personalities and /api/personalities/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.services import personalities

router = APIRouter(tags=["personas"])


@router.get("/api/personalities")
async def list_personalities(
        category: personalities.Category | None = None) -> list[dict[str, Any]]:
    """A bare array (as the reference answers), sorted by label."""
    return personalities.listing(category)


@router.get("/api/personalities/{personality_id}", response_model=personalities.PersonalityAgent)
async def get_personality(personality_id: str) -> personalities.PersonalityAgent:
    return personalities.definition(personality_id)
