"""Values as the editor's text widgets hold them, shared by the graph nodes and converters.

``graph.Input`` and ``graph.Constant`` keep their value in one STRING widget: text stays
text for STRING ports, anything else is JSON. ``graph.Template`` fills ``${a}`` ... ``${h}``
placeholders. Both sides of the conversion (``engine/workflow*.py``) and the nodes that run
in the editor (``nodes/graph.py``) use these functions, so the round trip is exact.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine import types as t

# The graph-input coercion the compiler applies to values given as text (CLI, query strings).
from engine.compiler import coerce as coerce_text
from engine.reference import unescape

# The port types graph.Input / graph.Constant offer; a graph input of another type cannot
# be shown in the editor.
PORT_TYPES: tuple[str, ...] = t.BUILTIN_TYPES

# graph.Template's optional inputs; a template may name at most this many distinct values.
TEMPLATE_SLOTS: tuple[str, ...] = ("a", "b", "c", "d", "e", "f", "g", "h")

_PLACEHOLDER = re.compile(r"(?<!\$)\$\{\s*([a-h])\s*\}")


def encode_value(port_type: str, value: Any) -> str:
    """A value as graph.Input's text widget shows it: plain text, or JSON."""
    if isinstance(value, str) and (port_type == t.STRING or not _reads_as_json(value)):
        return value
    return json.dumps(value, ensure_ascii=False)


def decode_value(port_type: str, text: str) -> Any:
    """The inverse of ``encode_value``, then the compiler's coercion for the port type."""
    if port_type == t.STRING:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return coerce_text(port_type, value)


def _reads_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def value_type(value: Any) -> str:
    """The port type a graph.Constant gets for a constant written in a graph file."""
    if isinstance(value, bool):
        return t.BOOLEAN
    if isinstance(value, int):
        return t.INT
    if isinstance(value, float):
        return t.FLOAT
    if isinstance(value, str):
        return t.STRING
    return t.JSON


def shown_text(value: Any) -> str:
    """What graph.Output displays: text as is, plain data as JSON, anything else by type."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"


def placeholders(template: str) -> list[str]:
    """The graph.Template inputs a template text names, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(template)))


def render_template(template: str, values: dict[str, Any]) -> str:
    """Fill ``${a}``...: values render as the engine renders template references
    (``str``); ``$${`` writes a literal ``${``."""
    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return value if isinstance(value, str) else str(value)
    return unescape(_PLACEHOLDER.sub(fill, template))
