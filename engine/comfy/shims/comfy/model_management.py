"""``comfy.model_management``: the interruption helpers packs call inside loops."""

from __future__ import annotations

from engine.context import current_context
from engine.errors import RunCancelled


class InterruptProcessingException(RunCancelled):
    pass


def processing_interrupted() -> bool:
    ctx = current_context()
    return ctx is not None and ctx.cancelled


def throw_exception_if_processing_interrupted() -> None:
    if processing_interrupted():
        raise InterruptProcessingException("processing was interrupted")


def interrupt_current_processing(value: bool = True) -> None:
    """Interrupts come from the run's cancel; a pack asking for one is ignored."""


def get_torch_device() -> str:
    return "cpu"
