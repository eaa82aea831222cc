"""Structured output: a local model's reply as JSON that matches a JSON Schema."""

from __future__ import annotations

import json
from typing import Any

from engine.sdk import ALWAYS, Input, Json, Messages, Node, NodeContext, NodeOutputs, node
from nodes.llm import _check_messages
from nodes.primitive import INT_LIMIT


def check_schema(schema: Any) -> dict[str, Any]:
    """The schema, if llama.cpp can turn it into a grammar safely. Its converter raises on
    a root ``$ref`` and writes a grammar that crashes the process for regex shorthands
    (``\\d``, ``\\w``...) in ``pattern``: both are refused here, with what to write."""
    if not isinstance(schema, dict) or not schema:
        raise ValueError("schema must be a JSON Schema object (e.g. a pydantic model's "
                         "model_json_schema())")
    if "$ref" in schema:
        raise ValueError("schema's root may not be a $ref: put the object's properties at "
                         "the root")

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            pattern = value.get("pattern")
            if isinstance(pattern, str) and "\\" in pattern:
                raise ValueError(f"pattern {pattern!r} uses a backslash escape, which the "
                                 "grammar converter mistranslates: write classes like [0-9]")
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
    walk(schema)
    return schema


class StructuredOutputError(ValueError):
    """The model's JSON did not validate (e.g. cut short by max_tokens)."""


@node("llm.Json", category="llm", display_name="JSON Reply (Local Model)", model_kind="llm")
class JsonReply(Node):
    """Reply with a local GGUF model as JSON matching a JSON Schema.

    Decoding is constrained by a llama.cpp grammar made from the schema, so the text
    always has the schema's shape; it is then parsed and validated. Bound every string
    (maxLength) and array (maxItems) so a reply cannot run past max_tokens. Remote
    providers are not supported.
    """

    messages: Messages = Input(description="the conversation, oldest first")
    json_schema: Json = Input(description="the JSON Schema the reply must match")
    model: str = Input("", options_from="models:llm",
                       description="a GGUF model id; empty picks the installed default")
    temperature: float = Input(0.0, min=0.0, max=2.0, step=0.05)
    max_tokens: int = Input(512, min=16, max=32768, description="the longest reply, in tokens")
    seed: int = Input(-1, min=-1, max=INT_LIMIT, description="-1: random")
    attempts: int = Input(2, min=1, max=5,
                          description="tries before failing when a reply is cut short")

    class Outputs(NodeOutputs):
        data: Json
        text: str
        finish_reason: str
        model: str

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        sampling = (inputs.get("temperature") or 0) > 0
        return ALWAYS if sampling and inputs.get("seed", -1) == -1 else None

    def run(self, ctx: NodeContext) -> Outputs:
        import jsonschema

        messages = _check_messages(self.messages)
        schema = check_schema(self.json_schema)
        handle = ctx.model("llm", self.model)
        problem = ""
        for attempt in range(self.attempts):
            ctx.check_cancelled()
            seed = self.seed + attempt if self.seed >= 0 else None
            try:
                reply = handle.call("chat_json", messages, schema,
                                    temperature=self.temperature,
                                    max_tokens=self.max_tokens, seed=seed)
            except Exception as exc:
                if "has no method 'chat_json'" in str(exc):
                    raise ValueError(f"model '{handle.id}' has no structured output: llm.Json "
                                     "needs a GGUF model run by llama.cpp") from None
                raise
            try:
                # strict=False: the grammar lets raw control characters into strings.
                data = json.loads(reply["text"], strict=False)
                jsonschema.validate(data, schema)
            except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
                problem = f"{reply['finish_reason']}: {str(exc).splitlines()[0]}"
                continue
            ctx.progress(1, 1)
            return self.Outputs(data=data, text=reply["text"],
                                finish_reason=reply["finish_reason"], model=handle.id)
        raise StructuredOutputError(f"no reply matched the schema in {self.attempts} "
                                    f"attempt(s) (last: {problem}); raise max_tokens or "
                                    "bound the schema's strings and arrays")
