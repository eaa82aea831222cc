"""llm.Json: the bundled model's replies always validate against the schema they were
constrained by, on both executors."""

from __future__ import annotations

from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from engine.graph import Graph
from nodes.structured import check_schema
from server.services import recollection


class Pet(BaseModel):
    name: str = Field(min_length=1, max_length=16)
    species: Literal["cat", "dog", "bird", "fish", "other"]


class Household(BaseModel):
    city: str = Field(max_length=24)
    pets: list[Pet] = Field(max_length=2)
    has_garden: bool


def json_graph(prompt: str, schema: dict, seed: int = 0, max_tokens: int = 120) -> Graph:
    return Graph.model_validate({
        "nodes": {"ask": {"type": "llm.Json", "inputs": {
            "messages": [{"role": "system", "content": "Answer with JSON."},
                         {"role": "user", "content": prompt}],
            "json_schema": schema, "max_tokens": max_tokens, "seed": seed}}},
        "outputs": {"data": "${ask.data}", "text": "${ask.text}",
                    "finish_reason": "${ask.finish_reason}"}})


PROMPTS = ["I live in Oslo with two cats, Luna and Max, and a small garden.",
           "No pets here. Flat in Berlin, no garden.",
           "Write a poem about the sea."]  # off-topic: the shape still holds


# Grammar-constrained decoding runs at about half the free speed; on 2 shared cores three
# replies can take minutes.
@pytest.mark.timeout(600)
def test_replies_validate_against_their_schema_on_several_prompts(executor):
    schema = Household.model_json_schema()
    for seed, prompt in enumerate(PROMPTS):
        result = executor.run(json_graph(prompt, schema, seed), timeout=300)
        assert result.status == "success", result.error
        data = result.outputs["data"]
        jsonschema.validate(data, schema)
        Household.model_validate(data)
        assert result.outputs["finish_reason"] == "stop"


def test_the_session_extraction_schema_only_allows_statements_shown(executor):
    shown = ["My name is Zoe.", "I am allergic to peanuts.", "Tell me a joke."]
    schema = recollection.schema(len(shown))
    # Up to three memories with keys of up to 32 characters, and the whitespace the
    # grammar allows between them: room for all of it
    result = executor.run(json_graph("The user's statements:\n" + recollection.numbered(shown),
                                     schema, max_tokens=400), timeout=300)
    assert result.status == "success", result.error
    jsonschema.validate(result.outputs["data"], schema)
    assert all(1 <= m["statement"] <= 3 for m in result.outputs["data"]["memories"])
    kept = recollection.kept(result.outputs["data"], shown)
    assert all(k.value.startswith('The user said: "') for k in kept)


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_schemas_the_grammar_cannot_take_are_refused_before_the_model_runs(executor):
    for schema, words in (({"$ref": "#/$defs/A", "$defs": {"A": {"type": "string"}}}, "root"),
                          ({"type": "object", "properties": {
                              "code": {"type": "string", "pattern": "^\\d+$"}}}, "[0-9]"),
                          ({}, "JSON Schema object"), ("text", "JSON Schema object")):
        with pytest.raises(ValueError, match=words):
            check_schema(schema)
        result = executor.run(json_graph("hi", schema), timeout=60)  # type: ignore[arg-type]
        assert result.status == "failed" and result.error.node_id == "ask"
        assert words in result.error.message
