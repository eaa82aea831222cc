"""Run events. Executors emit ``Event``s; faces (CLI, server, editor) consume them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

EventType = Literal["run_started", "node_started", "node_progress", "node_cached",
                    "node_finished", "node_failed", "run_finished", "run_failed",
                    "run_cancelled"]


@dataclass(slots=True)
class Event:
    """Internal form: a slotted dataclass, cheap enough to emit per node at 5,000 nodes."""

    type: str
    run_id: str
    node_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def model(self) -> EventModel:
        return EventModel(type=self.type, run_id=self.run_id, node_id=self.node_id,  # type: ignore[arg-type]
                          data=self.data, ts=self.ts)


class EventModel(BaseModel):
    """Wire form of an event (SSE, WebSocket, ``--json``)."""

    type: EventType
    run_id: str
    node_id: str | None = None
    data: dict[str, Any] = {}
    ts: float
