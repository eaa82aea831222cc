"""The engine's exceptions. Each message says what went wrong and what to do."""

from __future__ import annotations

import reprlib
from typing import Any

from pydantic import BaseModel

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40


def shown(value: Any) -> str:
    """A value as a message quotes it: shortened, and never raising.

    ``repr`` raises for an int with more digits than ``sys.get_int_max_str_digits()``
    and for values nested deeper than the recursion limit; a message must still be made.
    """
    try:
        return _SHORT.repr(value)
    except ValueError:  # a too-long int somewhere inside (reprlib on 3.11 does not catch it)
        return f"<{type(value).__name__} holding an integer too long to print>"


class EngineError(Exception):
    """Base of everything the engine raises on purpose."""


class GraphLoadError(EngineError):
    """A graph file or body could not be read into a graph."""


class ValidationIssue(BaseModel):
    """One problem found in a graph, tied to the node and input it is about."""

    kind: str
    message: str
    node_id: str | None = None
    node_type: str | None = None
    input: str | None = None
    details: str = ""

    def __str__(self) -> str:
        where = ""
        if self.node_id is not None:
            where = f"node '{self.node_id}'"
            if self.input:
                where += f" input '{self.input}'"
            where += ": "
        elif self.input:
            where = f"input '{self.input}': "
        return f"{where}{self.message} [{self.kind}]"


class GraphValidationError(EngineError):
    """The graph has problems; all of them are in ``issues``."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"graph is invalid ({len(issues)} problem(s)):\n{lines}")


class NodeError(BaseModel):
    """Why a node failed: what the run reports and the API returns."""

    node_id: str
    node_type: str
    error_type: str
    message: str
    traceback: list[str] = []


class NodeExecutionError(EngineError):
    """A node raised while running; the run failed because of it."""

    def __init__(self, error: NodeError) -> None:
        self.error = error
        super().__init__(f"node '{error.node_id}' ({error.node_type}) failed: "
                         f"{error.error_type}: {error.message}")


class RunCancelled(EngineError):  # noqa: N818 (reads as what happened to the run)
    """The run was cancelled before it finished."""


class RegistryError(EngineError):
    """A node type could not be registered (for example, it would shadow a built-in)."""
