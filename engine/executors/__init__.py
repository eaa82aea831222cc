"""Executors: one interface, in-process (``LocalExecutor``) or on Ray (``RayExecutor``)."""

from engine.executors.base import Executor
from engine.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "RayExecutor"]


def __getattr__(name: str) -> object:
    # Ray is imported only when asked for: `homepilot validate` must start fast.
    if name == "RayExecutor":
        from engine.executors.ray import RayExecutor
        return RayExecutor
    raise AttributeError(name)
