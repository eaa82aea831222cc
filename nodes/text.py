"""Text nodes: building, splitting, matching and (de)serialising strings.

These are the glue of most feature graphs: prompts are assembled from templates, model
replies are parsed as JSON, and regular expressions pull fields out of free text.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from engine.sdk import Input, Json, Node, NodeContext, NodeOutputs, node


class _NamedFormatter(string.Formatter):
    """``str.format`` limited to ``{name}`` and ``{name:spec}``.

    Attribute and index lookups (``{x.__class__}``, ``{x[0]}``) are refused: a template
    comes from a graph file and must not be able to walk Python objects.
    """

    def get_field(self, field_name: str, args: Sequence[Any],
                  kwargs: Mapping[str, Any]) -> tuple[Any, str]:
        if not field_name:
            raise ValueError("template has an empty placeholder {}; name it, e.g. {name}")
        if not field_name.isidentifier():
            raise ValueError(f"template placeholder {{{field_name}}} is not a plain name; "
                             "only {name} and {name:format} are supported")
        if field_name not in kwargs:
            known = ", ".join(sorted(kwargs)) or "none"
            raise ValueError(f"template placeholder {{{field_name}}} has no value "
                             f"(values has: {known})")
        return kwargs[field_name], field_name


_FORMATTER = _NamedFormatter()


@node("text.Template", category="text", display_name="Text Template")
class Template(Node):
    """Fill ``{name}`` placeholders from a JSON object; ``{{`` and ``}}`` are literal braces.

    Format specs work too (``{price:.2f}``), so numbers can be shown the way a prompt or a
    message needs them.
    """

    template: str = Input(multiline=True, description="text with {name} placeholders")
    values: Json = Input({}, description="a JSON object: placeholder name -> value")

    class Outputs(NodeOutputs):
        text: str

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        template = inputs.get("template")
        if isinstance(template, str):
            try:
                list(_FORMATTER.parse(template))
            except ValueError as exc:
                return [("template", f"template is not valid: {exc}")]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        if not isinstance(self.values, dict):
            raise ValueError(f"values must be a JSON object, not {type(self.values).__name__}")
        try:
            text = _FORMATTER.vformat(self.template, (), self.values)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot fill template {self.template!r}: {exc}") from exc
        return self.Outputs(text=text)


@node("text.Concat", category="text", display_name="Concatenate Texts")
class Concat(Node):
    """Join two texts with a separator (empty by default)."""

    a: str = Input("", multiline=True, description="first text")
    b: str = Input("", multiline=True, description="second text")
    separator: str = Input("", description="put between a and b")

    class Outputs(NodeOutputs):
        text: str

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(text=f"{self.a}{self.separator}{self.b}")


@node("text.Split", category="text", display_name="Split Text")
class Split(Node):
    """Split text into a JSON list of parts; an empty separator splits on any whitespace."""

    text: str = Input("", multiline=True, description="the text to split")
    separator: str = Input(",", description="empty: split on runs of whitespace")
    strip: bool = Input(True, description="trim whitespace around each part, drop empty ones")

    class Outputs(NodeOutputs):
        parts: list[str]
        count: int

    def run(self, ctx: NodeContext) -> Outputs:
        parts = self.text.split(self.separator) if self.separator else self.text.split()
        if self.strip:
            parts = [part.strip() for part in parts if part.strip()]
        return self.Outputs(parts=parts, count=len(parts))


@node("text.Join", category="text", display_name="Join List into Text")
class Join(Node):
    """Join a JSON list into one text; items that are not text are written with ``str``."""

    items: Json = Input(description="a JSON list")
    separator: str = Input(", ", description="put between the items")

    class Outputs(NodeOutputs):
        text: str

    def run(self, ctx: NodeContext) -> Outputs:
        if not isinstance(self.items, list):
            raise ValueError(f"items must be a JSON list, not {type(self.items).__name__}")
        return self.Outputs(text=self.separator.join(_as_text(item) for item in self.items))


def _as_text(value: Any) -> str:
    """Text as is, numbers as Python writes them, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"regular expression {pattern!r} is not valid: {exc}") from exc


def _match_json(match: re.Match[str] | None) -> dict[str, Any] | None:
    if match is None:
        return None
    return {"text": match.group(0), "groups": list(match.groups()),
            "named": match.groupdict(), "start": match.start(), "end": match.end()}


@node("text.Regex", category="text", display_name="Regular Expression")
class Regex(Node):
    """Search, match, find all or substitute with a regular expression.

    ``result`` by mode: search/match give ``{text, groups, named, start, end}`` or null;
    findall gives a list (of strings, or of group lists when the pattern has groups);
    sub gives the text with every match replaced (``\\1`` refers to a group).
    ``matched`` says whether the pattern matched at all.
    """

    pattern: str = Input(description="a Python regular expression")
    text: str = Input("", multiline=True, description="the text to search")
    mode: str = Input("search", choices=["search", "findall", "sub", "match"])
    replacement: str = Input("", description="used by mode 'sub'")
    ignore_case: bool = Input(False, description="match upper and lower case alike")

    class Outputs(NodeOutputs):
        result: Json
        matched: bool

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        pattern = inputs.get("pattern")
        if isinstance(pattern, str):
            try:
                _compile(pattern, False)
            except ValueError as exc:
                return [("pattern", str(exc))]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        regex = _compile(self.pattern, self.ignore_case)
        if self.mode == "sub":
            try:
                text, count = regex.subn(self.replacement, self.text)
            except re.error as exc:
                raise ValueError(f"replacement {self.replacement!r} is not valid for pattern "
                                 f"{self.pattern!r}: {exc}") from exc
            return self.Outputs(result=text, matched=count > 0)
        if self.mode == "findall":
            found = [list(item) if isinstance(item, tuple) else item
                     for item in regex.findall(self.text)]
            return self.Outputs(result=found, matched=bool(found))
        match = regex.match(self.text) if self.mode == "match" else regex.search(self.text)
        return self.Outputs(result=_match_json(match), matched=match is not None)


@node("text.JsonParse", category="text/json", display_name="Parse JSON")
class JsonParse(Node):
    """Parse JSON text (a model's reply, a file's contents) into a JSON value."""

    text: str = Input(multiline=True, description="JSON text")

    class Outputs(NodeOutputs):
        value: Json

    def run(self, ctx: NodeContext) -> Outputs:
        try:
            value = json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"text is not valid JSON: {exc.msg} at line {exc.lineno} "
                             f"column {exc.colno}") from exc
        return self.Outputs(value=value)


@node("text.JsonFormat", category="text/json", display_name="Format JSON")
class JsonFormat(Node):
    """Write a JSON value as text; indent 0 writes it on one line."""

    value: Json = Input(description="any JSON value")
    indent: int = Input(2, min=0, max=8, description="spaces per level; 0: one line")
    sort_keys: bool = Input(False, description="write object keys in sorted order")

    class Outputs(NodeOutputs):
        text: str

    def run(self, ctx: NodeContext) -> Outputs:
        try:
            text = json.dumps(self.value, indent=self.indent or None, sort_keys=self.sort_keys,
                              ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"value cannot be written as JSON: {exc}") from exc
        return self.Outputs(text=text)


@node("text.Length", category="text", display_name="Text Length")
class Length(Node):
    """The number of characters in a text."""

    text: str = Input("", multiline=True, description="the text to measure")

    class Outputs(NodeOutputs):
        length: int

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(length=len(self.text))


@node("text.Case", category="text", display_name="Change Case")
class Case(Node):
    """Change letter case: upper, lower or title."""

    text: str = Input("", multiline=True, description="the text to change")
    mode: str = Input("lower", choices=["upper", "lower", "title"])

    class Outputs(NodeOutputs):
        text: str

    def run(self, ctx: NodeContext) -> Outputs:
        changed = {"upper": str.upper, "lower": str.lower, "title": str.title}[self.mode]
        return self.Outputs(text=changed(self.text))
