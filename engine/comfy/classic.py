"""Classic ComfyUI nodes (INPUT_TYPES / RETURN_TYPES / FUNCTION) as ``NodeDef``s."""

from __future__ import annotations

import inspect
from typing import Any

from engine.comfy.values import call_with_accepted, unpack_result
from engine.context import NodeContext, active
from engine.spec import InputSpec, NodeDef, NodeResult, NodeSpec, OutputSpec

_KINDS = ("required", "optional", "hidden")
# Hidden inputs ComfyUI fills from the prompt; we fill what we have.
_HIDDEN = {"UNIQUE_ID", "PROMPT", "EXTRA_PNGINFO", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG",
           "API_KEY_COMFY_ORG"}


def input_specs(declared: dict[str, Any]) -> list[InputSpec]:
    specs: list[InputSpec] = []
    for kind in _KINDS:
        for name, entry in (declared.get(kind) or {}).items():
            specs.append(_input(name, kind, entry))
    return specs


def _input(name: str, kind: str, entry: Any) -> InputSpec:
    if isinstance(entry, str):
        entry = (entry,)
    declared_type = entry[0] if entry else "*"
    options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
    choices = None
    if isinstance(declared_type, (list, tuple)):
        choices, port = list(declared_type), "COMBO"
    elif declared_type == "COMBO" and "options" in options:
        choices, port = list(options["options"]), "COMBO"
    else:
        port = str(declared_type)
    default = options.get("default")
    if default is None and choices:
        default = choices[0]
    return InputSpec(name=name, type=port, kind=kind, default=default,  # type: ignore[arg-type]
                     min=options.get("min"), max=options.get("max"), step=options.get("step"),
                     choices=choices, multiline=bool(options.get("multiline")),
                     link_only=bool(options.get("forceInput")),
                     description=str(options.get("tooltip", "")))


def adapt(type_id: str, cls: type, display_name: str | None, module: str) -> NodeDef:
    declared = cls.INPUT_TYPES()
    inputs = input_specs(declared)
    return_types = tuple(getattr(cls, "RETURN_TYPES", ()))
    names = tuple(getattr(cls, "RETURN_NAMES", None) or ())
    is_list = tuple(getattr(cls, "OUTPUT_IS_LIST", None) or ())
    outputs = [OutputSpec(name=names[i] if i < len(names) else str(rt),
                          type="COMBO" if isinstance(rt, (list, tuple)) else str(rt),
                          is_list=bool(is_list[i]) if i < len(is_list) else False)
               for i, rt in enumerate(return_types)]
    spec = NodeSpec(type=type_id, display_name=display_name or type_id,
                    category=str(getattr(cls, "CATEGORY", "custom")),
                    description=str(getattr(cls, "DESCRIPTION", "") or inspect.getdoc(cls) or ""),
                    inputs=inputs, outputs=outputs,
                    output_node=bool(getattr(cls, "OUTPUT_NODE", False)),
                    input_is_list=bool(getattr(cls, "INPUT_IS_LIST", False)),
                    deterministic=not bool(getattr(cls, "NOT_IDEMPOTENT", False)),
                    source=module, api="comfy")
    hidden = [(i.name, i.type) for i in inputs if i.kind == "hidden"]
    function = cls.FUNCTION

    def execute(values: dict[str, Any], ctx: NodeContext) -> NodeResult:
        for name, kind in hidden:
            values[name] = _hidden_value(kind, ctx, spec.input_is_list)
        with active(ctx):
            produced = getattr(cls(), function)(**values)
        return unpack_result(produced, len(outputs))

    is_changed = None
    if hasattr(cls, "IS_CHANGED"):
        def is_changed(consts: dict[str, Any]) -> Any:
            return call_with_accepted(cls.IS_CHANGED, consts)
    validate = None
    if hasattr(cls, "VALIDATE_INPUTS"):
        def validate(consts: dict[str, Any]) -> list[tuple[str | None, str]]:
            outcome = call_with_accepted(cls.VALIDATE_INPUTS, consts)
            if outcome is True:
                return []
            accepted = _accepted_names(cls.VALIDATE_INPUTS, consts)
            return [(accepted[0] if accepted else None, str(outcome))]
    return NodeDef(spec=spec, execute=execute, is_changed=is_changed, validate_inputs=validate)


def _hidden_value(kind: str, ctx: NodeContext, as_list: bool) -> Any:
    if kind == "UNIQUE_ID":
        value: Any = ctx.node_id
    elif kind == "PROMPT":
        value = ctx.run_info.get("prompt") or {}
    elif kind == "EXTRA_PNGINFO":
        value = ctx.run_info.get("extra_pnginfo") or {}
    else:
        value = {} if kind in _HIDDEN else None
    return [value] if as_list else value


def _accepted_names(function: Any, values: dict[str, Any]) -> list[str]:
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return list(values)
    return [name for name in parameters if name in values]
