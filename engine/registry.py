"""The node registry: type id -> ``NodeDef``, plus how to build the same registry elsewhere.

A registry records its ``RegistrySource`` (an importable factory and the custom-node
folders) so that a Ray worker can build an identical registry in its own process and
tasks only need to carry type ids.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

from pydantic import BaseModel, Field

from engine.errors import RegistryError
from engine.spec import NodeDef, NodeSpec


class RegistrySource(BaseModel):
    """How to build a registry: ``factory`` is ``"module:function"`` taking the dirs."""

    factory: str = "nodes:build_registry"
    custom_node_dirs: list[str] = Field(default_factory=list)


class PackInfo(BaseModel):
    """A custom node pack as found at start-up."""

    name: str
    path: str
    api: str = "classic"
    ok: bool = True
    error: str | None = None
    node_types: list[str] = Field(default_factory=list)
    web_directory: str | None = None


class Registry:
    def __init__(self, source: RegistrySource | None = None) -> None:
        self.source = source
        self._defs: dict[str, NodeDef] = {}
        self._builtin: set[str] = set()
        self.packs: list[PackInfo] = []

    def register(self, definition: NodeDef, *, builtin: bool = True) -> None:
        type_id = definition.spec.type
        if type_id in self._builtin:
            raise RegistryError(f"node type '{type_id}' is built in and cannot be overridden")
        if type_id in self._defs:
            raise RegistryError(f"node type '{type_id}' is already registered "
                                f"(by {self._defs[type_id].spec.source})")
        self._defs[type_id] = definition
        if builtin:
            self._builtin.add(type_id)

    def register_class(self, cls: type, *, builtin: bool = True, source: str | None = None) -> None:
        definition: NodeDef | None = cls.__dict__.get("__node_def__")
        if definition is None:
            raise RegistryError(f"{cls.__name__} is not a node: decorate it with @node(...)")
        if source is not None:
            definition.spec.source = source
        self.register(definition, builtin=builtin)

    def register_module(self, module: ModuleType, *, builtin: bool = True,
                        source: str | None = None) -> list[str]:
        """Register every ``@node`` class defined in a module; returns their type ids."""
        found = []
        for value in vars(module).values():
            if isinstance(value, type) and "__node_def__" in value.__dict__ \
                    and value.__module__ == module.__name__:
                self.register_class(value, builtin=builtin, source=source)
                found.append(value.__node_def__.spec.type)
        return found

    def get(self, type_id: str) -> NodeDef | None:
        return self._defs.get(type_id)

    def __contains__(self, type_id: str) -> bool:
        return type_id in self._defs

    def __len__(self) -> int:
        return len(self._defs)

    def types(self) -> list[str]:
        return sorted(self._defs)

    def specs(self) -> list[NodeSpec]:
        return [self._defs[t].spec for t in self.types()]

    def schemas(self) -> dict[str, dict[str, Any]]:
        """Every node's schema as JSON-ready dicts, keyed by type id."""
        return {t: self._defs[t].spec.model_dump(mode="json") for t in self.types()}


_built: dict[str, Registry] = {}
_lock = threading.Lock()


def build(source: RegistrySource) -> Registry:
    """Build a registry from its source (no caching)."""
    module_name, _, function = source.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    registry = factory(source.custom_node_dirs)
    if not isinstance(registry, Registry):
        raise RegistryError(f"{source.factory} returned {type(registry).__name__}, not a Registry")
    registry.source = source
    return registry


def registry_for(source_json: str) -> Registry:
    """The process-wide registry for a source given as JSON: built once per process.

    Keyed by the JSON text itself, so a Ray task pays one dict lookup, not a parse.
    """
    registry = _built.get(source_json)
    if registry is None:
        with _lock:
            registry = _built.get(source_json)
            if registry is None:
                registry = build(RegistrySource.model_validate_json(source_json))
                _built[source_json] = registry
    return registry


def remember(registry: Registry) -> None:
    """Let ``registry_for`` find an already-built registry (the driver's own)."""
    if registry.source is not None:
        _built.setdefault(registry.source.model_dump_json(), registry)
