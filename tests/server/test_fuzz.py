"""Every HTTP operation fuzzed from the app's own /openapi.json with schemathesis: no
answer is a 5xx, and every answer is one the OpenAPI documents (status code, content
type, headers, body schema).

Schemathesis's engine (what its CLI runs) drives the app in-process over ASGI, lifespan
included, through its phases: examples (the schema has none, so it has nothing to send),
coverage (boundary and invalid values of each field, missing and malformed bodies),
fuzzing (``MAX_EXAMPLES`` random cases an operation, positive and negative) and
stateful. The stateful phase follows OpenAPI links: the app declares none, but
schemathesis infers some from the schema (a run's ``run_id`` into /runs/{run_id}/...,
graph names into /graphs/{name}/runs, ...) and chains calls along them. (Its pytest
plugin, ``from_fixture`` + ``parametrize``, would be the usual way in; with pytest 9.2
its lazy loader fails on ``Function._nodeid``, hence the engine.)

Every operation of /openapi.json is called; none is excluded. Not in /openapi.json, so
not fuzzed here: the WebSockets (/ws, /runs/{id}/ws), the routes ComfyUI packs add
(forwarded to their own aiohttp app) and ``GET /graphs/{name}/runs`` (a 405 kept out of
the schema).

Generation is real: the test pack's tiny models are installed, so imagine/edit/animate,
enhance and friends run rather than answer 503 no_models (a 5xx this test would flag).
What bounds the run is the LLM: ``_bound_generation`` caps the tokens a chat may
generate. Nothing else is changed in what schemathesis sends.

Reproducible: hypothesis is derandomized with a fixed seed and writes no example
database. A failure prints, per operation, the check, what went wrong and a curl command
replaying the request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.engine.run import PhaseName
from schemathesis.python import asgi

from engine.executors.local import LocalExecutor
from engine.files import FileStore
from engine.settings import Settings, get_settings
from server.app import create_app

MAX_EXAMPLES = 20
# The answer's contract: no 5xx, and each answer as the OpenAPI documents it. (Checks
# left out judge the request instead: positive_data_acceptance wants every schema-valid
# body accepted, though a valid-looking provider name may be unknown; those are business
# rules the schema does not carry.)
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance"]
# Nothing leaves the machine: outbound calls the app makes on its own go to a closed port.
OFFLINE = "http://127.0.0.1:9"

# A chat may generate up to 32768 tokens (900 or 256 when the body names none or null):
# on two slow cores one such reply takes minutes. Token counts the server would accept
# are lowered to a few, and a chat body that names none (or null) gets a few. Values the
# server must refuse (0, 40000, "x", ...) are sent as generated, so its validation is
# still fuzzed.
CHAT_TOKENS = 8
TOKEN_FIELDS = {"/chat": ("textMaxTokens",), "/chat/stream": ("textMaxTokens",),
                "/v1/chat/completions": ("max_tokens", "max_completion_tokens")}
MOST_TOKENS = 32768  # what ChatIn and the OpenAI ChatRequest accept


def _bound_generation(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A schemathesis ``before_call`` hook: see CHAT_TOKENS."""
    fields = TOKEN_FIELDS.get(case.operation.path)
    if not fields or not isinstance(case.body, dict):
        return
    if all(case.body.get(field) is None for field in fields):
        case.body[fields[0]] = CHAT_TOKENS
    for field in fields:
        value = case.body.get(field)
        if type(value) is int and CHAT_TOKENS < value <= MOST_TOKENS:
            case.body[field] = CHAT_TOKENS


@pytest.fixture
def fuzzed_app(tmp_path, registry, test_pack) -> Iterator[FastAPI]:
    """The app over a fresh home whose model store is the test home's (bundled chat and
    embedding models, the test pack)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    settings = Settings(home=home, huggingface_url=OFFLINE, civitai_url=OFFLINE,
                        llm_base_url=f"{OFFLINE}/v1", ollama_base_url=OFFLINE)
    executor = LocalExecutor(registry, files=FileStore(home / "files"))
    yield create_app(settings, registry, executor)
    # Schemathesis started the app's lifespan on its first request; end it first.
    asgi.shutdown_lifespans()
    executor.close()


def _schema(app: FastAPI) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True,
                                    database="none")
    schema.config.seed = 20240601
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])
    schema.config.checks.update(included_check_names=CHECKS)
    return schema


def _run(schema: Any) -> tuple[set[str], list[str], dict[str, int]]:
    """(operations tested, problems found, inferred stateful transitions)."""
    tested: set[str] = set()
    problems: list[str] = []
    stateful: dict[str, int] = {}
    failures: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
    schemathesis.hook("before_call")(_bound_generation)
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                # A phase with nothing to send skips (examples: the schema has none); the
                # test checks that every operation was called in some phase.
                recorder = event.recorder
                if recorder.cases and event.phase != PhaseName.STATEFUL_TESTING:
                    tested.add(recorder.label)
                for checks in recorder.checks.values():
                    for check in checks:
                        if check.failure_info is None:
                            continue
                        failure = check.failure_info.failure
                        key = (check.name, failure.title)
                        failures[recorder.label].setdefault(
                            key, f"{failure.message}\n    {check.failure_info.code_sample}")
            elif isinstance(event, events.PhaseStarted) and event.payload is not None:
                stateful = {"inferred": event.payload.inferred_transitions,
                            "total": event.payload.transitions_total}
            elif isinstance(event, events.NonFatalError):
                problems.append(f"{event.label}: {event.info.title}: {event.value}")
            elif isinstance(event, events.FatalError):
                problems.append(f"fatal: {event.exception!r}")
            elif isinstance(event, events.EngineFinished) and \
                    event.stop_reason != StopReason.COMPLETED:
                problems.append(f"the run stopped early: {event.stop_reason}")
    finally:
        schemathesis.hooks.unregister(_bound_generation)
    for label, found in sorted(failures.items()):
        for (check, title), detail in found.items():
            problems.append(f"{label}: {check}: {title}\n    {detail}")
    return tested, problems, stateful


@pytest.mark.timeout(1200)
def test_every_operation_answers_as_documented_and_never_with_a_5xx(fuzzed_app):
    schema = _schema(fuzzed_app)
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert len(operations) > 50
    tested, problems, stateful = _run(schema)
    assert not problems, "\n\n".join(problems)
    assert tested == operations, f"not called: {sorted(operations - tested)}"
    # The app declares no links (schemathesis adds what it infers to its own copy); the
    # stateful phase ran on the inferred ones.
    links = [path for path, item in fuzzed_app.openapi()["paths"].items()
             for operation in item.values() if isinstance(operation, dict)
             for response in operation.get("responses", {}).values() if "links" in response]
    assert links == [] and stateful.get("inferred", 0) == stateful.get("total", 0) > 0
