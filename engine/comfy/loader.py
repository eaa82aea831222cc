"""Discovering and importing custom node packs, the way ComfyUI does, tolerating bad ones.

A pack is a ``*.py`` file or a package folder inside a custom-nodes folder. It may be:
- classic ComfyUI: ``NODE_CLASS_MAPPINGS`` (+ ``NODE_DISPLAY_NAME_MAPPINGS``, ``WEB_DIRECTORY``);
- V3 ComfyUI: ``async def comfy_entrypoint() -> ComfyExtension``;
- HomePilot SDK: ``@node`` classes listed in ``HOMEPILOT_NODES``.
A pack that fails to import is logged (``IMPORT FAILED: <pack>``) and skipped.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path
from typing import Any

from engine.comfy import classic, v3
from engine.registry import PackInfo, Registry

log = logging.getLogger("homepilot.packs")

_SHIMS = str(Path(__file__).parent / "shims")
NAMESPACE = "custom_nodes"


def install_shims() -> None:
    """Make ``comfy_api``, ``comfy.utils``, ``folder_paths`` importable for packs."""
    if _SHIMS not in sys.path:
        sys.path.append(_SHIMS)
    if NAMESPACE not in sys.modules:
        namespace = types.ModuleType(NAMESPACE)
        namespace.__path__ = []  # a namespace for the packs' module names
        sys.modules[NAMESPACE] = namespace


def discover(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")) or entry.name.endswith(".disabled"):
            continue
        if entry.is_file() and entry.suffix == ".py":
            found.append(entry)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            found.append(entry)
    return found


def load_packs(registry: Registry, folders: list[str]) -> list[PackInfo]:
    """Import every pack in ``folders`` into ``registry``; returns what was found."""
    install_shims()
    infos = []
    for folder in folders:
        for path in discover(Path(folder)):
            info = _load(registry, path)
            registry.packs.append(info)
            infos.append(info)
    return infos


def _load(registry: Registry, path: Path) -> PackInfo:
    name = path.stem if path.is_file() else path.name
    module_name = f"{NAMESPACE}.{name}"
    info = PackInfo(name=name, path=str(path))
    try:
        module = _import(module_name, path)
        _register(registry, module, module_name, info)
    except Exception as exc:  # third-party code: anything can go wrong; log and go on
        info.ok = False
        info.error = f"{type(exc).__name__}: {exc}"
        log.error("IMPORT FAILED: %s (%s): %s", name, path, info.error)
        sys.modules.pop(module_name, None)
    return info


def _import(module_name: str, path: Path) -> types.ModuleType:
    existing = sys.modules.get(module_name)
    if existing is not None:
        return existing
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            module_name, path / "__init__.py", submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _register(registry: Registry, module: types.ModuleType, module_name: str,
              info: PackInfo) -> None:
    mappings: dict[str, Any] | None = getattr(module, "NODE_CLASS_MAPPINGS", None)
    entrypoint = getattr(module, "comfy_entrypoint", None)
    own = getattr(module, "HOMEPILOT_NODES", None)
    if mappings is None and entrypoint is None and own is None:
        raise ImportError("the pack exports neither NODE_CLASS_MAPPINGS, comfy_entrypoint "
                          "nor HOMEPILOT_NODES")
    web = getattr(module, "WEB_DIRECTORY", None)
    if web:
        base = Path(info.path) if Path(info.path).is_dir() else Path(info.path).parent
        info.web_directory = str((base / web).resolve())
    definitions = []
    if mappings is not None:
        info.api = "classic"
        names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}) or {}
        definitions += [(t, lambda t=t, c=c: classic.adapt(t, c, names.get(t), module_name))
                        for t, c in mappings.items()]
    if entrypoint is not None:
        info.api = "v3"
        extension = v3.run_coroutine(entrypoint())
        v3.run_coroutine(extension.on_load())
        for cls in v3.run_coroutine(extension.get_node_list()):
            definitions.append((cls.__name__, lambda c=cls: v3.adapt(c, module_name)))
    if own is not None:
        info.api = "homepilot"
        for cls in own:
            definitions.append((cls.__name__, lambda c=cls: c.__dict__["__node_def__"]))
    for label, make in definitions:
        try:
            definition = make()
            definition.spec.source = module_name
            registry.register(definition, builtin=False)
            info.node_types.append(definition.spec.type)
        except Exception as exc:  # one bad node does not take the pack down
            log.error("node %s of pack %s skipped: %s: %s", label, info.name,
                      type(exc).__name__, exc)


def pack_registry(folders: list[str]) -> Registry:
    """A registry holding only the packs in ``folders`` (no built-in nodes).

    Used by the engine's own tests and benchmarks; also a registry factory for Ray workers.
    """
    from engine.registry import RegistrySource

    registry = Registry(RegistrySource(factory="engine.comfy.loader:pack_registry",
                                       custom_node_dirs=list(folders)))
    load_packs(registry, list(folders))
    return registry
