"""The narrow facade a node sees while it runs: progress, cancellation, logging, files."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from engine.errors import EngineError, RunCancelled
from engine.files import FileStore

# (node_id, payload) -> None; the executor routes it into the run's event stream.
ProgressSink = Callable[[str, dict[str, Any]], None]


class NodeContext:
    """Given to ``run``; nodes use nothing of the engine beyond it."""

    __slots__ = ("run_id", "node_id", "node_type", "_sink", "_cancel", "_files", "_models",
                 "log", "saved_files", "run_info")

    def __init__(self, run_id: str, node_id: str, node_type: str, sink: ProgressSink | None,
                 cancel: threading.Event | None, files: FileStore | None,
                 models: Callable[[], Any] | None = None,
                 run_info: dict[str, Any] | None = None) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.node_type = node_type
        self._sink = sink
        self._cancel = cancel
        self._files = files
        self._models = models
        self.log = logging.getLogger(f"homepilot.node.{node_type}")
        # File ids this node stored: a cached result naming a file that was deleted since
        # must not be served (see Executor.split_cached).
        self.saved_files: list[str] = []
        # What the run says about itself: ComfyUI prompts give "prompt" (the API prompt)
        # and "extra_pnginfo" (the editor's workflow), which SaveImage writes into PNGs.
        self.run_info: dict[str, Any] = run_info or {}

    def progress(self, value: float, total: float | None = None, *, text: str | None = None,
                 preview: str | None = None) -> None:
        """Report progress (``value`` of ``total``), a streamed text delta, or a preview."""
        self.check_cancelled()
        if self._sink is None:
            return
        payload: dict[str, Any] = {"value": value, "max": total}
        if text is not None:
            payload["text"] = text
        if preview is not None:
            payload["preview"] = preview
        self._sink(self.node_id, payload)

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise if the run was cancelled; long loops call this between steps."""
        if self.cancelled:
            raise RunCancelled(f"run {self.run_id} was cancelled")

    def model(self, kind: str, model_id: str = "", *, idempotent: bool = True) -> Any:
        """A handle to the resident host of a model (``kind`` such as "llm"); an empty id
        picks the installed default. ``handle.call(method, ...)`` / ``handle.stream(...)``.

        ``idempotent``: a call may be repeated once if the host dies mid-way.
        """
        if self._models is None:
            raise EngineError(f"{self.node_type} needs a model, but this executor has no "
                              "model hosts")
        return self._models().get(kind, model_id, idempotent=idempotent)

    @property
    def files(self) -> FileStore:
        """The file store for artifacts this node writes (images, videos, documents)."""
        if self._files is None:
            self._files = FileStore.default()
        return self._files.recording(self.saved_files)


# The context of the node running in this thread. Only ComfyUI shims read it
# (``comfy.utils.ProgressBar`` has no context argument); our nodes get ``ctx`` passed in.
_current: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar(
    "homepilot_node_context", default=None)


def current_context() -> NodeContext | None:
    return _current.get()


@contextlib.contextmanager
def active(ctx: NodeContext) -> Iterator[NodeContext]:
    """``with active(ctx): ...`` makes ``ctx`` the current context for shims."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
