"""The ``@node`` decorator: a typed pydantic class becomes a ``NodeDef``."""

from __future__ import annotations

import inspect
import math
import re
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr
from pydantic.fields import FieldInfo, PydanticUndefined

from engine import types as t
from engine.context import NodeContext
from engine.spec import InputSpec, NodeDef, NodeResult, NodeSpec, OutputSpec, Resources

_PLAIN = {str: t.STRING, int: t.INT, float: t.FLOAT, bool: t.BOOLEAN, dict: t.JSON,
          list: t.JSON, Any: t.ANY}
_EXTRA = "homepilot"

# IS_CHANGED's "always run me" value; NaN never equals itself.
ALWAYS = math.nan


# Where open choices come from (``Input(options_from=...)``): installed models of one or
# more kinds, the pictures in the input folder, or the weight files in one of ComfyUI's
# model folders ("folder:upscale_models" = $HOMEPILOT_HOME/models/upscale_models, listed
# as ComfyUI lists it: relative paths with "/"). Sources joined by "|" are listed in turn.
_SOURCE = r"(models:[a-z]+(,[a-z]+)*|input_images|folder:[a-z0-9_]+)"
OPTION_SOURCE = re.compile(rf"{_SOURCE}(\|{_SOURCE})*")
# The weight files a "folder:" source lists: those our loaders read (ComfyUI also lists
# .pt2, .pkl and .sft).
FOLDER_SUFFIXES = frozenset({".ckpt", ".pt", ".bin", ".pth", ".safetensors"})


def Input(default: Any = PydanticUndefined, *, type: str | None = None,  # noqa: A002, N802
          min: float | None = None, max: float | None = None,  # noqa: A002
          step: float | None = None, choices: list[Any] | None = None,
          multiline: bool = False, optional: bool = False, link_only: bool = False,
          options_from: str | None = None, suggestions: list[Any] | None = None,
          description: str = "") -> Any:
    """Declare a node input; without a default the input is required.

    ``choices`` is a closed set: a graph naming anything else does not validate.
    ``options_from`` (``"models:diffusion"``, ``"models:inpaint,diffusion"``,
    ``"input_images"``, ``"models:upscaler|folder:upscale_models"``) and ``suggestions``
    (fixed values such as ``"lanczos"``) are what the editor offers in a list; they are
    not enforced, since a graph may name a model or file installed later.
    """
    if options_from is not None and not OPTION_SOURCE.fullmatch(options_from):
        raise ValueError(f"options_from={options_from!r} is not a source of options; use "
                         "'models:<kind>[,<kind>...]', 'input_images' or "
                         "'folder:<name>', several joined by '|'")
    if choices is not None and (options_from is not None or suggestions is not None):
        raise ValueError("an input has either closed choices or open options_from/"
                         "suggestions, not both")
    if suggestions is not None and options_from is None:
        raise ValueError("suggestions go with options_from; a fixed list alone is choices")
    extra = {"type": type, "min": min, "max": max, "step": step, "choices": choices,
             "multiline": multiline, "optional": optional, "link_only": link_only,
             "options_from": options_from, "suggestions": suggestions}
    if optional and default is PydanticUndefined:
        default = None
    return FieldInfo(default=default, description=description or None,
                     json_schema_extra={_EXTRA: extra})


def Output(*, type: str | None = None, is_list: bool = False,  # noqa: A002, N802
           description: str = "") -> Any:
    """Declare an output field of a node's ``Outputs`` class."""
    return FieldInfo(default=None, description=description or None,
                     json_schema_extra={_EXTRA: {"type": type, "is_list": is_list}})


class NodeOutputs(BaseModel):
    """Base of a node's ``Outputs``; ``show(...)`` attaches what an output node displays."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _ui: dict[str, Any] | None = PrivateAttr(default=None)

    def show(self, **ui: Any) -> NodeOutputs:
        self._ui = ui
        return self


class Node(BaseModel):
    """Base class of SDK nodes: fields are inputs, ``run`` does the work."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="ignore")

    class Outputs(NodeOutputs):
        pass

    def run(self, ctx: NodeContext) -> NodeOutputs | dict[str, Any]:
        raise TypeError(f"{type(self).__name__} does not define run()")

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        """Extra cache key from constant inputs (ComfyUI's IS_CHANGED); ALWAYS = rerun."""
        return None

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        """Cross-input validation of constants (ComfyUI's VALIDATE_INPUTS)."""
        return []


def port_type(annotation: Any, explicit: str | None = None) -> str:
    """The port type of a Python annotation (``Annotated[..., Port(...)]`` wins)."""
    if explicit:
        return explicit
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, t.Port):
                return meta.type
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return port_type(args[0])
        return ",".join(port_type(a) for a in args)
    if origin in (list, dict, tuple):
        return t.JSON
    return _PLAIN.get(annotation, t.JSON)


def _field_type(info: FieldInfo, explicit: str | None) -> str:
    # pydantic moves Annotated metadata (our Port) from the annotation to info.metadata.
    for meta in info.metadata:
        if isinstance(meta, t.Port) and not explicit:
            return meta.type
    return port_type(info.annotation, explicit)


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra.get(_EXTRA, {})) if isinstance(extra, dict) else {}


def _input_specs(cls: type[Node]) -> list[InputSpec]:
    specs = []
    for name, info in cls.model_fields.items():
        extra = _extra(info)
        has_default = info.default is not PydanticUndefined or info.default_factory is not None
        default = info.get_default(call_default_factory=True) if has_default else None
        specs.append(InputSpec(
            name=name, type=_field_type(info, extra.get("type")),
            kind="optional" if extra.get("optional") else "required",
            default=default, min=extra.get("min"), max=extra.get("max"),
            step=extra.get("step"), choices=extra.get("choices"),
            multiline=bool(extra.get("multiline")), link_only=bool(extra.get("link_only")),
            options_from=extra.get("options_from"), suggestions=extra.get("suggestions"),
            description=info.description or ""))
    return specs


def _output_specs(outputs: type[NodeOutputs]) -> list[OutputSpec]:
    specs = []
    for name, info in outputs.model_fields.items():
        extra = _extra(info)
        specs.append(OutputSpec(name=name, type=_field_type(info, extra.get("type")),
                                is_list=bool(extra.get("is_list")),
                                description=info.description or ""))
    return specs


def _executor(cls: type[Node], names: tuple[str, ...]) -> Callable[..., NodeResult]:
    # Inputs taking PIL pictures, which ComfyUI's nodes may hand over as tensors.
    pictures = {name: _field_type(info, _extra(info).get("type"))
                for name, info in cls.model_fields.items()
                if any(isinstance(meta, t.AsPil) for meta in info.metadata)}

    def execute(inputs: dict[str, Any], ctx: NodeContext) -> NodeResult:
        for name, kind in pictures.items():
            if name in inputs:
                value = inputs[name]
                inputs[name] = [t.as_pil(v, kind) for v in value] \
                    if isinstance(value, list) else t.as_pil(value, kind)
        # Inputs were validated against the schema when the graph was compiled;
        # model_construct skips re-validating them on every call.
        instance = cls.model_construct(**inputs)
        produced = instance.run(ctx)
        if isinstance(produced, NodeOutputs):
            return NodeResult(tuple(getattr(produced, n) for n in names), produced._ui)
        if isinstance(produced, dict):
            return NodeResult(tuple(produced.get(n) for n in names))
        raise TypeError(f"{cls.__name__}.run returned {type(produced).__name__}; "
                        "return self.Outputs(...) or a dict")
    return execute


def node(type_id: str, *, version: str = "1.0.0", category: str | None = None,
         display_name: str | None = None, description: str | None = None,
         resources: Resources | None = None, model_kind: str | None = None,
         deterministic: bool = True, output_node: bool = False, input_is_list: bool = False,
         idempotent: bool = True) -> Callable[[type[Node]], type[Node]]:
    """Register a ``Node`` subclass as node type ``type_id`` (e.g. ``"text.Concat"``).

    ``idempotent=False``: running it twice has effects beyond its outputs (it calls a
    paid service, sends a message): a node whose worker died is then not run again.

    ``input_is_list``: the node gathers per-item results — every input arrives as a
    list, once, instead of the node running once per item.
    """

    def decorate(cls: type[Node]) -> type[Node]:
        outputs_cls = cls.Outputs
        output_specs = _output_specs(outputs_cls)
        spec = NodeSpec(
            type=type_id, version=version,
            category=category or (type_id.rsplit(".", 1)[0] if "." in type_id else "misc"),
            display_name=display_name or _title(type_id),
            description=description or _describe(cls.__doc__),
            inputs=_input_specs(cls), outputs=output_specs, resources=resources,
            model_kind=model_kind, deterministic=deterministic, output_node=output_node,
            input_is_list=input_is_list, idempotent=idempotent)
        names = tuple(o.name for o in output_specs)
        # Only hooks a node overrides are registered: the base ones would cost a call.
        fingerprint = cls.fingerprint if _overrides(cls, "fingerprint") else None
        check = cls.check if _overrides(cls, "check") else None
        cls.__node_def__ = NodeDef(spec=spec, execute=_executor(cls, names),
                                   is_changed=fingerprint, validate_inputs=check)
        return cls

    return decorate


def _describe(doc: str | None) -> str:
    """A docstring as a description: paragraphs kept, the lines wrapped in the source joined
    (the editor wraps them itself); lines of a list (``- item``) stay lines."""
    paragraphs = []
    for paragraph in inspect.cleandoc(doc or "").split("\n\n"):
        lines = [line.strip() for line in paragraph.strip().splitlines()]
        if any(line.startswith(("- ", "* ")) for line in lines):
            paragraphs.append("\n".join(lines))
        else:
            paragraphs.append(" ".join(lines))
    return "\n\n".join(p for p in paragraphs if p)


def _overrides(cls: type[Node], name: str) -> bool:
    return getattr(cls, name).__func__ is not getattr(Node, name).__func__


# Joining words a title writes in lower case ("Text to Image", not "Text To Image").
_MINOR_WORDS = {"A", "An", "And", "As", "At", "By", "For", "From", "In", "Into", "Of", "On",
                "Or", "The", "To", "With"}


def _title(type_id: str) -> str:
    """A display name from a type id's last part: ``image.TextToImage`` -> "Text to Image"."""
    name = type_id.rsplit(".", 1)[-1]
    words, current = [], ""
    for char in name:
        if char.isupper() and current and not current[-1].isupper():
            words.append(current)
            current = char
        else:
            current += char
    words.append(current)
    words = [w for w in words if w]
    return " ".join(w.lower() if i and w in _MINOR_WORDS else w for i, w in enumerate(words))
