"""Executors: one interface, in-process (``LocalExecutor``) or on Ray (``RayExecutor``)."""

from engine.executors.base import Executor
from engine.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "make_executor"]


def __getattr__(name: str) -> object:
    # Ray is imported only when asked for: `homepilot validate` must start fast.
    if name == "RayExecutor":
        from engine.executors.ray import RayExecutor
        return RayExecutor
    if name == "make_executor":
        from engine.executors.factory import make_executor
        return make_executor
    raise AttributeError(name)
