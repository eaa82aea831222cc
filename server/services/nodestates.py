"""ComfyUI's ``progress_state`` messages and binary preview frames, from engine events.

The editor (frontend 1.58) learns which nodes are running *only* from ``progress_state``:
without it no node is highlighted and no node progress bar moves. Each message carries
every node that has started so far (running, finished or failed), as ComfyUI's
``WebUIProgressHandler`` sends it, on every start, update and finish.
"""

from __future__ import annotations

import base64
import struct
import threading
from typing import Any, Literal

from engine.events import Event

State = Literal["running", "finished", "error"]
# Binary frame types: 1 = preview picture; picture types: 1 = JPEG, 2 = PNG.
PREVIEW_IMAGE = 1
_PICTURES = {"image/jpeg": 1, "image/png": 2}


class NodeStates:
    """The per-node progress of one run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._nodes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # events of parallel branches come from many threads

    def _set(self, node_id: str, state: State, value: float | None = None,
             total: float | None = None) -> None:
        entry = self._nodes.get(node_id)
        if entry is None:
            entry = self._nodes[node_id] = {
                "value": 0, "max": 1, "state": state, "node_id": node_id,
                "prompt_id": self.run_id, "display_node_id": node_id, "parent_node_id": None,
                "real_node_id": node_id}
        entry["state"] = state
        if total is not None and total > 0:
            entry["max"] = total
        if value is not None:
            entry["value"] = value
        if state == "finished":
            entry["value"] = entry["max"]

    def update(self, event: Event) -> dict[str, Any] | None:
        """The ``progress_state`` data this event makes, or None when it changes nothing."""
        node = str(event.node_id) if event.node_id is not None else None
        with self._lock:
            if event.type == "node_started" and node:
                self._set(node, "running")
            elif event.type == "node_progress" and node:
                value, total = event.data.get("value"), event.data.get("max")
                self._set(node, "running", value if isinstance(value, (int, float)) else None,
                          total if isinstance(total, (int, float)) else None)
            elif event.type == "node_finished" and node:
                self._set(node, "finished")
            elif event.type == "node_failed" and node:
                self._set(node, "error")
            elif event.type == "node_cached":
                for cached in event.data.get("nodes") or []:
                    self._set(str(cached), "finished")
            else:
                return None
            return {"prompt_id": self.run_id,
                    "nodes": {k: dict(v) for k, v in self._nodes.items()}}


def preview_frame(event: Event) -> bytes | None:
    """A step's latent preview (a data URL) as the binary frame the editor shows."""
    preview = event.data.get("preview") if event.type == "node_progress" else None
    if not isinstance(preview, str) or not preview.startswith("data:"):
        return None
    header, _, payload = preview.partition(",")
    kind = _PICTURES.get(header[5:].split(";")[0])
    if kind is None or ";base64" not in header:
        return None
    try:
        picture = base64.b64decode(payload, validate=True)
    except ValueError:
        return None
    return struct.pack(">II", PREVIEW_IMAGE, kind) + picture
