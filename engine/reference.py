"""Parsing of ``${node.output}`` / ``${inputs.name}`` references inside input values."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The node ids a reference can name: letters, digits, "_", "-" and ":".
_SOURCE = r"[A-Za-z0-9_\-:]+"
_REF = rf"(?<!\$)\$\{{\s*({_SOURCE})\s*\.\s*([A-Za-z0-9_\-]+)\s*\}}"
_WHOLE = re.compile(rf"^{_REF}$")
_ANY = re.compile(_REF)
_LINKABLE = re.compile(_SOURCE)

GRAPH_INPUTS = "inputs"


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference: ``source`` is a node id, or ``inputs`` for a graph input."""

    source: str
    name: str

    @property
    def is_graph_input(self) -> bool:
        return self.source == GRAPH_INPUTS

    def __str__(self) -> str:
        return f"${{{self.source}.{self.name}}}"


@dataclass(frozen=True, slots=True)
class Template:
    """A string with references inside other text; ``parts`` alternate text and refs."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> list[Ref]:
        return [part for part in self.parts if isinstance(part, Ref)]


def linkable(node_id: str) -> bool:
    """Whether ``${node_id.output}`` can name this node (``a b`` or ``3.1`` cannot)."""
    return _LINKABLE.fullmatch(node_id) is not None


def parse(value: object) -> Ref | Template | None:
    """A link (the whole value is one reference), a template, or None for a constant."""
    if not isinstance(value, str) or "${" not in value:
        return None
    whole = _WHOLE.match(value)
    if whole:
        return Ref(whole.group(1), whole.group(2))
    parts: list[str | Ref] = []
    position = 0
    for match in _ANY.finditer(value):
        if match.start() > position:
            parts.append(unescape(value[position:match.start()]))
        parts.append(Ref(match.group(1), match.group(2)))
        position = match.end()
    if position < len(value):
        parts.append(unescape(value[position:]))
    if not any(isinstance(part, Ref) for part in parts):
        return None
    return Template(tuple(parts))


def escape(value: str) -> str:
    """Literal text as a graph file writes it: ``${`` would start a reference."""
    return value.replace("${", "$${")


def unescape(value: str) -> str:
    """``$${`` writes a literal ``${`` in a graph file."""
    return value.replace("$${", "${")


def render(template: Template, lookup: dict[Ref, object]) -> str:
    """Fill a template from resolved reference values."""
    return "".join(part if isinstance(part, str) else _text(lookup[part])
                   for part in template.parts)


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)
