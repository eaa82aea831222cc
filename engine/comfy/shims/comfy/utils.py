"""``comfy.utils.ProgressBar``: reports into the running node's progress events."""

from __future__ import annotations

from engine.context import current_context


class ProgressBar:
    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0

    def update_absolute(self, value: int, total: int | None = None, preview: object = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        ctx = current_context()
        if ctx is not None:
            ctx.progress(self.current, self.total)

    def update(self, value: int) -> None:
        self.update_absolute(self.current + value)
