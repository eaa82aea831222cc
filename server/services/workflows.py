"""HomePilot graphs as the editor's workflows, both ways.

- The shipped graphs (``graphs/``) appear read-only in a ``HomePilot`` folder of the
  workflows sidebar, converted to UI workflows on request (cached per file version).
- A user graph (``$HOMEPILOT_HOME/graphs``) appears as a workflow of the same name.
- Saving a workflow keeps the editor's JSON as sent (nothing the frontend wrote is lost)
  and writes it as a YAML graph, which ``GET /graphs`` lists as ``user/<name>``, ``homepilot
  run`` runs and the editor re-opens. A YAML edited by hand after the save (newer than
  the JSON) wins: the editor then opens the graph converted afresh.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.files import write_atomic
from engine.loader import load_graph
from server.errors import ApiError
from server.services.graphs import SUFFIXES, graph_names, graph_path

log = logging.getLogger("homepilot.editor")

FOLDER = "workflows"
SHIPPED = "HomePilot"
_generated: dict[tuple[Path, int], bytes] = {}


def graph_stem(stem: str) -> str:
    """A workflow's name as a graph name: letters, digits, '_' and '-' per part."""
    parts = [re.sub(r"[^A-Za-z0-9_\-]+", "_", p).strip("_") for p in stem.split("/")]
    return "/".join(p for p in parts if p) or "workflow"


class Workflows:
    def __init__(self, state: Any, user: str) -> None:
        self.state = state
        self.shipped_root: Path = state.graphs_dir
        self.user_graphs: Path = state.settings.user_graphs_dir
        self.files: Path = state.settings.user_dir / user / FOLDER

    # -- the shipped graphs ----------------------------------------------------------

    def shipped(self) -> dict[str, str]:
        """``HomePilot/<file>.json`` -> graph name; flat where the base names are unique."""
        names = graph_names(self.shipped_root)
        bases = [n.rsplit("/", 1)[-1] for n in names]
        return {f"{SHIPPED}/{base if bases.count(base) == 1 else name}.json": name
                for name, base in zip(names, bases, strict=True)}

    def _convert(self, path: Path) -> bytes:
        key = (path, path.stat().st_mtime_ns)
        cached = _generated.get(key)
        if cached is None:
            from engine.workflow import graph_to_workflow

            workflow = graph_to_workflow(load_graph(path), self.state.registry)
            cached = json.dumps(workflow, indent=None).encode()
            _generated[key] = cached
        return cached

    # -- user graphs ----------------------------------------------------------------------

    def _yaml_of(self, relative: str) -> Path:
        """``workflows/a b.json`` -> ``$HOMEPILOT_HOME/graphs/a_b.yaml``."""
        stem = relative.removeprefix(FOLDER + "/").removesuffix(".json")
        return self.user_graphs / f"{graph_stem(stem)}.yaml"

    def _user_graph(self, stem: str) -> Path | None:
        for suffix in SUFFIXES:
            path = self.user_graphs / f"{stem}{suffix}"
            if path.is_file():
                return path
        return None

    # -- what the userdata routes ask ---------------------------------------------------

    def listing(self) -> dict[str, dict[str, Any]]:
        """Workflows that are graphs (relative to ``workflows/``) with their file info."""
        entries = {}
        for relative, name in self.shipped().items():
            entries[relative] = file_info(relative, graph_path(self.shipped_root, name))
        for name in graph_names(self.user_graphs):
            relative = f"{name}.json"
            if not (self.files / relative).is_file():
                path = self._user_graph(name)
                if path is not None:
                    entries[relative] = file_info(relative, path)
        return entries

    def read(self, relative: str) -> bytes | None:
        """The workflow a graph makes, or None to serve the stored file as it is."""
        if not relative.startswith(FOLDER + "/") or not relative.endswith(".json"):
            return None
        inner = relative.removeprefix(FOLDER + "/")
        try:
            name = self.shipped().get(inner)
            if name is not None:
                return self._convert(graph_path(self.shipped_root, name))
            graph = self._user_graph(inner.removesuffix(".json"))
            if graph is None:
                return None
            stored = self.files / inner
            if stored.is_file() and stored.stat().st_mtime_ns >= graph.stat().st_mtime_ns:
                return None
            return self._convert(graph)
        except EngineError as exc:
            raise ApiError(422, "graph_not_convertible", f"{relative}: {exc}") from exc

    def check_writable(self, relative: str) -> None:
        if relative.startswith(f"{FOLDER}/{SHIPPED}/"):
            raise ApiError(403, "read_only", f"the {SHIPPED} folder holds the graphs HomePilot "
                           "ships and cannot be changed; save a copy under another name")

    def saved(self, relative: str, data: bytes) -> str | None:
        """Write the saved workflow as a YAML graph; a reason when it cannot be one."""
        if not relative.startswith(FOLDER + "/") or not relative.endswith(".json"):
            return None
        from engine.workflow import dump_graph, workflow_to_graph

        target = self._yaml_of(relative)
        try:
            workflow = json.loads(data)
            graph = workflow_to_graph(workflow, self.state.registry,
                                      name=target.stem)
        except (ValueError, EngineError) as exc:
            log.warning("workflow %s saved, but not as a graph: %s", relative, exc)
            return f"saved, but not as a HomePilot graph: {exc}"
        write_atomic(target, dump_graph(graph).encode("utf-8"))
        return None

    def moved(self, source: str, target: str, data: bytes) -> None:
        self.deleted(source)
        self.saved(target, data)

    def deleted(self, relative: str) -> bool:
        """Remove the graph a workflow was saved as; whether there was one."""
        if not relative.startswith(FOLDER + "/") or not relative.endswith(".json"):
            return False
        target = self._yaml_of(relative)
        if target.is_file():
            target.unlink()
            return True
        return False


def file_info(relative: str, path: Path) -> dict[str, Any]:
    """A user file as /api/userdata lists it (times in ms)."""
    stat = path.stat()
    return {"path": relative, "size": stat.st_size, "modified": int(stat.st_mtime * 1000),
            "created": int(stat.st_ctime * 1000)}
