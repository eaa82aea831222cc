"""The graph library under ``graphs/``: listing and loading by name."""

from __future__ import annotations

import re
from pathlib import Path

from engine.graph import Graph
from engine.loader import load_graph
from server.errors import ApiError

_NAME = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
SUFFIXES = (".yaml", ".yml", ".json")


def graph_names(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    names = []
    for path in sorted(root.rglob("*")):
        if path.suffix in SUFFIXES and path.is_file() and not path.name.startswith("."):
            names.append(path.relative_to(root).with_suffix("").as_posix())
    return names


def graph_path(root: Path, name: str) -> Path:
    """The file of a named graph; names are checked, never joined blindly."""
    if not _NAME.match(name):
        raise ApiError(400, "invalid_graph_name", f"{name!r} is not a graph name "
                       "(letters, digits, '_', '-' and '/' between parts)")
    for suffix in SUFFIXES:
        candidate = root / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise ApiError(404, "graph_not_found", f"there is no graph named '{name}' in {root}")


_loaded: dict[Path, tuple[int, Graph]] = {}


def load_named(root: Path, name: str) -> Graph:
    """A named graph, parsed once per version of its file (endpoints load on every call)."""
    path = graph_path(root, name)
    stamp = path.stat().st_mtime_ns
    cached = _loaded.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    graph = load_graph(path)
    if graph.name == Path(name).name:
        graph = graph.model_copy(update={"name": name})
    _loaded[path] = (stamp, graph)
    return graph


# Graphs users made live in $HOMEPILOT_HOME/graphs and are named "user/<name>", so they
# can never shadow a shipped graph (features load those by name).
USER_PREFIX = "user/"


def library_names(shipped: Path, users: Path) -> list[str]:
    """Every runnable graph: the shipped ones, then the users'."""
    return graph_names(shipped) + [USER_PREFIX + n for n in graph_names(users)]


def load_library(shipped: Path, users: Path, name: str) -> Graph:
    if name.startswith(USER_PREFIX):
        return load_named(users, name.removeprefix(USER_PREFIX))
    return load_named(shipped, name)
