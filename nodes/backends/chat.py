"""What chat backends share: a whole reply gathered from their stream of pieces."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def gather(pieces: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"text"}`` pieces then one ``{"done", finish_reason, usage}`` -> the reply."""
    parts: list[str] = []
    final: dict[str, Any] = {}
    for piece in pieces:
        if "text" in piece:
            parts.append(piece["text"])
        else:
            final = piece
    return {"text": "".join(parts), "finish_reason": final.get("finish_reason", "stop"),
            "usage": final.get("usage", {})}
