"""Live progress bars for ``homepilot run`` on a terminal, drawn from run events."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from engine.events import Event


class ProgressView:
    """One bar for the whole run, one per node that reports steps."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                                 TimeElapsedColumn(), transient=False)
        self.run_task: TaskID | None = None
        self.node_tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def on_event(self, event: Event) -> None:
        progress = self.progress
        if event.type == "run_started":
            self.run_task = progress.add_task(f"graph {event.data['graph']}",
                                              total=max(event.data["to_run"], 1))
        elif event.type == "node_progress" and event.node_id is not None:
            task = self.node_tasks.get(event.node_id)
            total = event.data.get("max") or 0
            if task is None:
                task = self.node_tasks[event.node_id] = progress.add_task(
                    f"  {event.node_id}", total=total or None)
            progress.update(task, completed=event.data.get("value") or 0, total=total or None)
        elif event.type == "node_finished" and self.run_task is not None:
            progress.advance(self.run_task)
            task = self.node_tasks.get(event.node_id or "")
            if task is not None:
                progress.update(task, completed=progress.tasks[task].total or 1)
