"""What a persona needs (the ``dependencies/*.json`` of a package) and whether this
server has it.

Exported dependencies are computed from what the persona uses (its tools, agentic
settings, image model) and what is installed here (the model store). The check a
preview shows compares a package's dependencies with this server: models against the
model store, tools against the built-in tools the personalities use. This server has no
MCP gateway or A2A agents yet, so those are reported ``missing``, never pretended.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel

from engine.models.manifest import ModelManifest
from engine.models.store import ModelNotFoundError, ModelStore

PERSONALITIES = Path(__file__).resolve().parent.parent / "data" / "personalities.json"
IMAGE_KINDS = ("diffusion", "unet")
LLM_KINDS = ("llm",)
CHAT_MODEL = "chat model"  # the description of the check's chat model line
# HomePilot's built-in MCP servers, found from ``hp.<server>.<tool>`` tool names.
KNOWN_SERVERS = {
    "personal": ("hp-personal-assistant", "Personal notes search and day planning", 9101),
    "knowledge": ("hp-knowledge", "Knowledge base and document retrieval", 9102),
    "decision": ("hp-decision-copilot", "Decision support and analysis", 9103),
    "brief": ("hp-executive-briefing", "Executive briefing generation", 9104),
    "web": ("hp-web-search", "Web search via SearXNG or Tavily", 9105),
}
KNOWN_AGENTS = {
    "everyday-assistant": ("Friendly helper for summarization and planning", 9201),
    "chief-of-staff": ("Orchestrates fact-gathering, option-structuring, and briefing", 9202),
}

Status = Literal["available", "installable", "downloadable", "missing", "degraded", "unknown"]
Kind = Literal["model", "tool", "mcp_server", "a2a_agent"]


class Dependency(BaseModel):
    """One line of a dependency check (the contract's ``Dep``)."""

    name: str
    kind: Kind
    status: Status
    description: str = ""
    detail: str = ""
    source_type: Literal["builtin", "forge", "external", "registry", "community_bundle"]
    required: bool = False
    fallback: str | None = None
    registry_id: str | None = None
    auth_type: str | None = None
    url: str | None = None
    bundle_id: str | None = None
    port: int | None = None


class DependencyCheck(BaseModel):
    models: list[Dependency] = []
    tools: list[Dependency] = []
    mcp_servers: list[Dependency] = []
    a2a_agents: list[Dependency] = []
    all_satisfied: bool
    summary: str


@lru_cache(maxsize=1)
def _builtin_tools(stamp: float) -> frozenset[str]:
    entries = json.loads(PERSONALITIES.read_text())
    return frozenset(t for e in entries for t in e.get("allowed_tools") or []
                     if isinstance(t, str))


def builtin_tools() -> frozenset[str]:
    """The tools the built-in personalities may use (their ``allowed_tools``)."""
    return _builtin_tools(PERSONALITIES.stat().st_mtime)


def _details(value: Any) -> list[dict[str, Any]]:
    """``tool_details``/``agent_details`` as a list of dicts with an ``id``: the contract
    says a list, the reference writes a dict keyed by id; both are read."""
    if isinstance(value, dict):
        return [{"id": k, **v} for k, v in value.items() if isinstance(v, dict)]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def image_model_name(appearance: dict[str, Any]) -> str:
    settings = appearance.get("avatar_settings")
    chosen = settings.get("img_model") if isinstance(settings, dict) else None
    value = chosen or appearance.get("img_model") or ""
    return value if isinstance(value, str) else ""


def find_model(store: ModelStore, name: str, kinds: tuple[str, ...]) -> ModelManifest | None:
    """An installed model of one of ``kinds`` named ``name``: by id, by the file name's
    stem as id, or by its weights' file name."""
    wanted = {name, name.lower(), PurePosixPath(name).stem.lower()}
    for manifest in store.list():
        if manifest.kind in kinds and (manifest.id in wanted
                                       or PurePosixPath(manifest.path).name == name):
            return manifest
    return None


def default_model(store: ModelStore, kinds: tuple[str, ...]) -> ModelManifest | None:
    for kind in kinds:
        try:
            return store.default(kind)
        except ModelNotFoundError:
            continue
    return None


# -- the dependencies of a persona (export) ---------------------------------------------

def manifests(project: dict[str, Any], store: ModelStore) -> dict[str, dict[str, Any]]:
    """``dependencies/{tools,mcp_servers,a2a_agents,models,suite}.json`` for a project."""
    agent = project.get("persona_agent") or {}
    appearance = project.get("persona_appearance") or {}
    agentic = project.get("agentic") or {}
    tools = _strings(agent.get("allowed_tools"))
    builtin = builtin_tools()
    forge = [{"id": str(d.get("id") or d.get("name")), "name": str(d.get("name") or d.get("id")),
              "description": str(d.get("description") or ""), "source": "forge"}
             for d in _details(agentic.get("tool_details")) if d.get("id") or d.get("name")]
    capabilities = _strings(agentic.get("capabilities"))
    return {
        "tools": {
            "schema_version": 1,
            "personality_tools": {"description": "Tool ids from persona_agent.allowed_tools",
                                  "tools": tools},
            "forge_tools": {"description": "Tools from an MCP gateway (agentic.tool_details)",
                            "tools": forge},
            # Only tools this server defines have a schema to give.
            "tool_schemas": [{"name": t, "description": "", "input_schema": {},
                              "source": "personality_builtin", "required": False}
                             for t in tools if t in builtin],
            "capability_summary": {
                "required": [c for c in capabilities if c == "generate_images"],
                "optional": [c for c in capabilities if c != "generate_images"]},
        },
        "mcp_servers": {"schema_version": 1, "servers": _servers(forge)},
        "a2a_agents": {"schema_version": 1, "agents": _agents(agentic)},
        "models": _models(appearance, agent, store),
        "suite": {"schema_version": 1, "recommended_suite": "default_home",
                  "tool_source": agentic.get("tool_source") or "none",
                  "forge_sync_required": bool(agentic.get("tool_ids")
                                              or agentic.get("a2a_agent_ids"))},
    }


def _servers(forge: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_prefix: dict[str, list[str]] = {}
    for tool in forge:
        parts = tool["name"].split(".")
        if len(parts) >= 3 and parts[0] == "hp":
            by_prefix.setdefault(parts[1], []).append(tool["name"])
    servers = []
    for prefix, provided in sorted(by_prefix.items()):
        name, description, port = KNOWN_SERVERS.get(
            prefix, (f"hp-{prefix}", f"MCP server for hp.{prefix} tools", None))
        source = ({"type": "builtin", "builtin_id": name} if prefix in KNOWN_SERVERS
                  else {"type": "registry", "registry_id": name})
        servers.append({"name": name, "description": description, "default_port": port,
                        "source": source, "transport": "HTTP", "protocol": "MCP",
                        "tools_provided": provided,
                        "health_check": {"method": "POST", "path": "/rpc",
                                         "body": {"jsonrpc": "2.0", "method": "initialize",
                                                  "id": 1}}})
    return servers


def _agents(agentic: dict[str, Any]) -> list[dict[str, Any]]:
    details = {str(d.get("id")): d for d in _details(agentic.get("agent_details"))}
    agents, seen = [], set()
    for agent_id in _strings(agentic.get("a2a_agent_ids")):
        detail = details.get(agent_id, {})
        name = str(detail.get("name") or agent_id)
        if name in seen:
            continue
        seen.add(name)
        if name in KNOWN_AGENTS:
            description, port = KNOWN_AGENTS[name]
            source: dict[str, Any] = {"type": "builtin", "builtin_id": name}
        else:
            description, port = str(detail.get("description") or ""), None
            source = {"type": "external"}
        agents.append({"name": name, "description": description, "default_port": port,
                       "source": source, "required": False})
    return agents


def _models(appearance: dict[str, Any], agent: dict[str, Any],
            store: ModelStore) -> dict[str, Any]:
    image_models = []
    name = image_model_name(appearance)
    if name:
        installed = find_model(store, name, IMAGE_KINDS)
        image_models.append({
            "filename": name,
            "architecture": (str(installed.options.get("arch") or installed.format)
                             if installed else "unknown"),
            "role": "primary_avatar", "required": True})
    llm = agent.get("model") if isinstance(agent.get("model"), str) else None
    fallback = default_model(store, ("llm",))
    return {"schema_version": 1, "image_models": image_models,
            "llm_hint": {"min_capability": "any",
                         "recommended": llm or (fallback.id if fallback else ""),
                         "note": "Any instruction-tuned chat model works; larger ones "
                                 "follow the persona more closely"}}


# -- does this server have them (preview) -----------------------------------------------

def check(dependencies: dict[str, Any], store: ModelStore) -> DependencyCheck:
    """A package's dependencies against this server. ``all_satisfied``: every required
    dependency is available (a fallback model counts as ``degraded``, not available)."""
    models = _check_models(_dict(dependencies.get("models")), store)
    tools = _check_tools(_dict(dependencies.get("tools")))
    servers = [Dependency(
        name=str(s.get("name") or "?"), kind="mcp_server", status="missing",
        description=str(s.get("description") or ""),
        detail="MCP servers are not supported by this HomePilot yet; the persona chats "
               "without these tools",
        source_type="builtin" if _dict(s.get("source")).get("type") == "builtin"
        else "registry",
        registry_id=_text(_dict(s.get("source")).get("registry_id")),
        port=s.get("default_port") if isinstance(s.get("default_port"), int) else None)
        for s in _dicts(_dict(dependencies.get("mcp_servers")).get("servers"))]
    agents = [Dependency(
        name=str(a.get("name") or "?"), kind="a2a_agent", status="missing",
        description=str(a.get("description") or ""),
        detail="A2A agents are not supported by this HomePilot yet",
        source_type="builtin" if _dict(a.get("source")).get("type") == "builtin"
        else "external", required=bool(a.get("required")),
        port=a.get("default_port") if isinstance(a.get("default_port"), int) else None)
        for a in _dicts(_dict(dependencies.get("a2a_agents")).get("agents"))]
    every = [*models, *tools, *servers, *agents]
    unmet = [d for d in every if d.required and d.status != "available"]
    available = sum(d.status == "available" for d in every)
    summary = f"{available} of {len(every)} dependencies available"
    if unmet:
        summary += "; required but not available: " + ", ".join(
            f"{d.name} ({d.kind}, {d.status})" for d in unmet)
    return DependencyCheck(models=models, tools=tools, mcp_servers=servers, a2a_agents=agents,
                           all_satisfied=not unmet, summary=summary)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _model_line(name: str, kinds: tuple[str, ...], what: str, required: bool,
                store: ModelStore) -> Dependency:
    installed = find_model(store, name, kinds) if name else None
    if installed is not None:
        return Dependency(name=name, kind="model", status="available", required=required,
                          description=what, detail=f"installed as '{installed.id}'",
                          source_type="builtin" if installed.bundled else "external")
    fallback = default_model(store, kinds)
    if fallback is not None:
        return Dependency(name=name or fallback.id, kind="model", status="degraded",
                          required=required, description=what, fallback=fallback.id,
                          detail=f"not installed; '{fallback.id}' is used instead",
                          source_type="external")
    return Dependency(name=name or what, kind="model", status="missing", required=required,
                      description=what, source_type="external",
                      detail=f"no {'/'.join(kinds)} model is installed; see "
                             "`homepilot models list`")


def model_kinds(line: Dependency) -> tuple[str, ...]:
    """The model kinds that would satisfy a model line of ``check``."""
    return LLM_KINDS if line.description == CHAT_MODEL else IMAGE_KINDS


def _check_models(models: dict[str, Any], store: ModelStore) -> list[Dependency]:
    lines = [_model_line(str(m.get("filename") or ""), IMAGE_KINDS,
                         f"image model ({m.get('role') or 'avatar'})",
                         bool(m.get("required", True)), store)
             for m in _dicts(models.get("image_models")) if m.get("filename")]
    hint = _dict(models.get("llm_hint"))
    if hint:
        lines.append(_model_line(str(hint.get("recommended") or ""), LLM_KINDS, CHAT_MODEL,
                                 True, store))
    return lines


def _check_tools(tools: dict[str, Any]) -> list[Dependency]:
    builtin = builtin_tools()
    lines = []
    for name in _strings(_dict(tools.get("personality_tools")).get("tools")):
        known = name in builtin
        lines.append(Dependency(
            name=name, kind="tool", status="available" if known else "missing",
            source_type="builtin", required=False,
            detail="a built-in tool" if known else "this HomePilot has no tool of that name"))
    for tool in _dicts(_dict(tools.get("forge_tools")).get("tools")):
        lines.append(Dependency(
            name=str(tool.get("name") or tool.get("id") or "?"), kind="tool", status="missing",
            description=str(tool.get("description") or ""), source_type="forge",
            detail="gateway (MCP) tools are not supported by this HomePilot yet"))
    return lines
