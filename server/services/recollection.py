"""What ending a persona session extracts, and the JSON Schema the model must match.

The model is shown the user's statements, numbered, and files the ones worth keeping:
which statement (an enum of the valid numbers, so it cannot point past the list), a
category, a short key and an importance. The memory's value is the user's own words,
never the model's paraphrase: a small model then cannot invent or garble a fact, only
choose badly which to keep.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

# Categories the model may file a memory under (the contract's suggestions; "summary" is
# the session's own, stored on the session).
Category = Literal["fact", "preference", "important_date", "boundary", "milestone",
                   "emotion_pattern"]
MAX_STATEMENTS = 12
MAX_MEMORIES = 6
STATEMENT_CHARS = 300


def schema(statements: int) -> dict[str, Any]:
    """The JSON Schema handed to llm.Json for ``statements`` numbered statements. Every
    string and the list are bounded: a grammar-constrained small model otherwise runs on
    inside a string until max_tokens."""
    numbers = tuple(range(1, max(statements, 1) + 1))
    memory = create_model(
        "ExtractedMemory",
        statement=(Literal[numbers], Field(description="the statement's number")),
        category=(Category, ...),
        key=(str, Field(min_length=1, max_length=32, description="short snake_case label")),
        importance=(Literal[1, 2, 3, 4, 5], ...))
    extraction = create_model(
        "Extraction", memories=(list[memory], Field(max_length=min(statements, MAX_MEMORIES))))
    return extraction.model_json_schema()


class Kept(BaseModel):
    category: str
    key: str
    value: str
    importance: float


def numbered(statements: list[str]) -> str:
    return "\n".join(f"{i}. {text}" for i, text in enumerate(statements, 1))


def statements(user_messages: list[str]) -> list[str]:
    """The user's newest messages as the statements shown to the model."""
    cleaned = [" ".join(m.split())[:STATEMENT_CHARS] for m in user_messages]
    return [m for m in cleaned if m][-MAX_STATEMENTS:]


def _key(label: str, statement: str) -> str:
    """The model's key when it is a word; else the statement's first words (a key like
    "1" would make unrelated memories upsert over each other)."""
    key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:32]
    if len(re.sub(r"[^a-z]", "", key)) >= 3:
        return key
    words = re.findall(r"[a-z0-9]+", statement.lower())
    return "_".join(words[:6])[:48] or "note"


def kept(extracted: Any, shown: list[str]) -> list[Kept]:
    """The memories the model filed, one per statement, with the statement as value."""
    found: dict[int, Kept] = {}
    for item in (extracted or {}).get("memories", []):
        number = int(item["statement"])
        if not 1 <= number <= len(shown) or number in found:
            continue
        text = shown[number - 1]
        found[number] = Kept(category=item["category"], key=_key(str(item["key"]), text),
                             value=f'The user said: "{text}"',
                             importance=int(item["importance"]) / 5)
    return list(found.values())
