"""What chat backends share: a whole reply gathered from their stream of pieces."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class PromptTooLong(ValueError):  # noqa: N818 (reads as what is wrong with the request)
    """The messages do not fit the model's context window. The request's fault, not the
    model's: the API answers it with a 400 (its ``error_type`` is this class's name)."""


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
