"""ComfyUI's wire shapes: /object_info entries, /prompt errors, /history and /ws messages.

Shapes follow COMFY-COMPAT.md (observed on ComfyUI 0.3.64); where ComfyUI misreports
(a link to a missing node, a cycle, malformed JSON) we say what is actually wrong.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.declare import FOLDER_SUFFIXES
from engine.errors import ValidationIssue
from engine.events import Event
from engine.files import listed_files
from engine.models.store import ModelStore
from engine.spec import InputSpec, NodeSpec
from server.services.runs import RunRecord

# Our issue kinds -> ComfyUI's error types (theirs where they have one).
_COMFY_TYPES = {
    "type_mismatch": "return_type_mismatch",
    "missing_output": "bad_linked_input",
    "missing_node": "missing_node",
    "cycle": "dependency_cycle",
}


# Where the editor says a built-in node comes from: its source badge reads the part after
# "custom_nodes." (anything else outside ComfyUI's own modules shows as "?").
BUILTIN_MODULE = "custom_nodes.HomePilot"


def now_ms() -> int:
    return int(time.time() * 1000)


# -- /object_info -----------------------------------------------------------------------

# The frontend clamps a number widget declared without bounds to [0, 2048] and rounds a
# FLOAT without a step to one decimal. An SDK node's number without bounds takes any
# value, so object_info says so (ComfyUI's own packs are shown as they declare).
_OPEN_NUMBER = {"INT": {"min": -sys.maxsize, "max": sys.maxsize},
                "FLOAT": {"min": -sys.float_info.max, "max": sys.float_info.max,
                          "step": 0.001}}
# What the input folder lists for image.Load (engine.pictures reads these formats).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif",
                            ".tiff"})


def input_images(folder: Path) -> list[str]:
    """The pictures under ``folder`` as sorted relative paths with ``/`` (``sub/a.png``), as
    ComfyUI's LoadImage lists its input folder; hidden entries and symlinks are left out."""
    return listed_files(folder, IMAGE_SUFFIXES)


def input_options(specs: Iterable[NodeSpec], model_store: ModelStore,
                  input_dir: Path) -> dict[str, list[str]]:
    """The values behind each ``options_from`` the specs use, computed once per request:
    ``models:<kind>[,<kind>]`` lists installed model ids (kind by kind), ``input_images``
    the pictures in the input folder, ``folder:<name>`` the weight files in that model
    folder (``$HOMEPILOT_HOME/models/<name>``); ``a|b`` lists a's values, then b's."""
    sources = {item.options_from for spec in specs for item in spec.inputs
               if item.options_from}
    models = model_store.list() if any("models:" in s for s in sources) else []
    listed: dict[str, list[str]] = {}
    for part in {part for source in sources for part in source.split("|")}:
        if part == "input_images":
            listed[part] = input_images(input_dir)
        elif part.startswith("models:"):
            kinds = part.removeprefix("models:").split(",")
            listed[part] = [m.id for kind in kinds for m in models if m.kind == kind]
        elif part.startswith("folder:"):
            listed[part] = listed_files(model_store.root / part.removeprefix("folder:"),
                                        FOLDER_SUFFIXES)
    return {source: list(dict.fromkeys(value for part in source.split("|")
                                       for value in listed.get(part, [])))
            for source in sources}


def object_infos(specs: Iterable[NodeSpec], model_store: ModelStore,
                 input_dir: Path) -> dict[str, dict[str, Any]]:
    """GET /object_info: every spec, with the open choices as they are right now."""
    specs = list(specs)
    options = input_options(specs, model_store, input_dir)
    return {spec.type: object_info(spec, options) for spec in specs}


def _offered(spec: InputSpec, listed: list[str]) -> list[Any]:
    """An open combo's entries: the default ("" = the installed default model), the fixed
    suggestions, then what is installed, each once."""
    entries = [] if spec.default is None else [spec.default]
    for value in [*(spec.suggestions or ()), *listed]:
        if value not in entries:
            entries.append(value)
    return entries


def _input_entry(spec: InputSpec, api: str,
                 options: dict[str, list[str]] | None) -> list[Any]:
    widget: dict[str, Any] = {}
    if spec.default is not None:
        widget["default"] = spec.default
    for key in ("min", "max", "step"):
        value = getattr(spec, key)
        if value is not None:
            widget[key] = value
    if api == "homepilot" and spec.choices is None and not spec.link_only:
        for key, value in _OPEN_NUMBER.get(spec.type, {}).items():
            widget.setdefault(key, value)
    if spec.multiline:
        widget["multiline"] = True
    if spec.link_only:
        widget["forceInput"] = True
    if spec.description:
        widget["tooltip"] = spec.description
    if spec.choices is not None:
        return [list(spec.choices), widget] if widget else [list(spec.choices)]
    if spec.options_from is not None and options is not None and not spec.link_only:
        # ComfyUI's LoadImage shape: the list in the type position, the upload button
        # asked for in the options (frontend 1.58 reads it from V1 and "COMBO" specs).
        if spec.options_from == "input_images":
            widget["image_upload"] = True
        return [_offered(spec, options.get(spec.options_from, [])), widget]
    return [spec.type, widget] if widget else [spec.type]


def object_info(spec: NodeSpec, options: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """One node class as ComfyUI describes it. ``options`` (from ``input_options``) turns
    inputs with ``options_from`` into combos; without it they stay plain text widgets."""
    groups: dict[str, dict[str, Any]] = {"required": {}, "optional": {}, "hidden": {}}
    for item in spec.inputs:
        groups[item.kind][item.name] = (item.type if item.kind == "hidden"
                                        else _input_entry(item, spec.api, options))
    inputs = {kind: entries for kind, entries in groups.items() if entries or kind == "required"}
    info = {
        "input": inputs,
        "input_order": {kind: list(entries) for kind, entries in inputs.items()},
        "output": [o.type for o in spec.outputs],
        "output_is_list": [o.is_list for o in spec.outputs],
        "output_name": [o.name for o in spec.outputs],
        "name": spec.type,
        "display_name": spec.display_name,
        "description": spec.description,
        "python_module": spec.source if spec.source != "builtin" else BUILTIN_MODULE,
        "category": spec.category,
        "output_node": spec.output_node,
    }
    if spec.api == "comfy_v3":
        info.update({"output_tooltips": [o.description or None for o in spec.outputs],
                     "deprecated": False, "experimental": False, "api_node": False})
    return info


# -- POST /prompt errors -------------------------------------------------------------------

def _error(kind: str, message: str, details: str = "") -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def no_prompt() -> dict[str, Any]:
    return {"error": _error("no_prompt", "No prompt provided", "No prompt provided"),
            "node_errors": {}}


def bad_body(message: str) -> dict[str, Any]:
    return {"error": _error("invalid_prompt", message, message), "node_errors": {}}


def prompt_errors(issues: list[ValidationIssue], prompt: dict[str, Any],
                  outputs: list[str]) -> dict[str, Any]:
    """The 400 body for a prompt that failed validation."""
    unknown = [i for i in issues if i.kind == "unknown_node_type"]
    if unknown:
        first = unknown[0]
        return {"error": _error("invalid_prompt", f"Cannot execute because node "
                                f"{prompt.get(first.node_id or '', {}).get('class_type')} does "
                                "not exist.", f"Node ID '#{first.node_id}'"),
                "node_errors": {}}
    if any(i.kind == "prompt_no_outputs" for i in issues):
        return {"error": _error("prompt_no_outputs", "Prompt has no outputs"), "node_errors": {}}
    node_errors: dict[str, Any] = {}
    general = []
    for issue in issues:
        if issue.node_id is None:
            general.append(issue)
            continue
        entry = node_errors.setdefault(issue.node_id, {
            "errors": [], "dependent_outputs": outputs,
            "class_type": prompt.get(issue.node_id, {}).get("class_type", issue.node_type)})
        kind = _COMFY_TYPES.get(issue.kind, issue.kind)
        message = ("Custom validation failed for node" if issue.kind == "custom_validation_failed"
                   else issue.message)
        details = issue.details or (f"{issue.input}: {issue.message}" if issue.input
                                    else issue.message)
        entry["errors"].append({"type": kind, "message": message, "details": details,
                                "extra_info": {"input_name": issue.input} if issue.input else {}})
    details = "; ".join(str(i) for i in general)
    return {"error": _error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                            details), "node_errors": node_errors}


# -- /history ----------------------------------------------------------------------------

def _messages(record: RunRecord) -> list[list[Any]]:
    messages: list[list[Any]] = []
    pid = record.run_id
    for event in list(record.handle.events):
        ts = int(event.ts * 1000)
        if event.type == "run_started":
            messages.append(["execution_start", {"prompt_id": pid, "timestamp": ts}])
        elif event.type == "node_cached":
            messages.append(["execution_cached", {"nodes": event.data.get("nodes", []),
                                                  "prompt_id": pid, "timestamp": ts}])
        elif event.type in ("run_finished", "run_failed", "run_cancelled"):
            messages.append(list(terminal_message(record, event)))
    return messages


def history_entry(record: RunRecord) -> dict[str, Any]:
    handle = record.handle
    result = handle.result(0) if handle.done() else None
    outputs = result.ui if result is not None else {}
    status_str = {"success": "success", "failed": "error", "cancelled": "error"}.get(
        handle.status, handle.status)
    return {
        "prompt": [record.number, record.run_id, record.prompt or {},
                   {"client_id": record.client_id, **record.extra_data}, record.output_nodes],
        "outputs": outputs,
        "status": {"status_str": status_str, "completed": handle.status == "success",
                   "messages": _messages(record)},
        "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                 for n in outputs},
    }


# -- /ws messages -----------------------------------------------------------------------

def terminal_message(record: RunRecord, event: Event) -> tuple[str, dict[str, Any]]:
    pid, ts = record.run_id, int(event.ts * 1000)
    if event.type == "run_finished":
        return "execution_success", {"prompt_id": pid, "timestamp": ts}
    error = event.data.get("error") or {}
    executed = [e.node_id for e in record.handle.events if e.type == "node_finished"]
    if event.type == "run_cancelled":
        return "execution_interrupted", {"prompt_id": pid, "node_id": None, "node_type": None,
                                         "executed": executed, "timestamp": ts}
    return "execution_error", {
        "prompt_id": pid, "node_id": error.get("node_id"), "node_type": error.get("node_type"),
        "executed": executed, "exception_message": error.get("message", ""),
        "exception_type": error.get("error_type", ""), "traceback": error.get("traceback", []),
        "current_inputs": {}, "current_outputs": {}, "timestamp": ts}


def ws_messages(record: RunRecord, event: Event) -> list[tuple[str, dict[str, Any]]]:
    """The ComfyUI WebSocket messages one engine event becomes."""
    pid = record.run_id
    kind = event.type
    if kind == "run_started":
        return [("execution_start", {"prompt_id": pid, "timestamp": int(event.ts * 1000)})]
    if kind == "node_cached":
        # As ComfyUI does, a cached node that showed something shows it again, so a client
        # waiting for `executed` gets its images from a fully cached resubmission too.
        shown = [("executed", {"node": node, "display_node": node, "output": ui,
                               "prompt_id": pid})
                 for node, ui in (event.data.get("ui") or {}).items()]
        return [("execution_cached", {"nodes": event.data.get("nodes", []), "prompt_id": pid,
                                      "timestamp": int(event.ts * 1000)}), *shown]
    if kind == "node_started":
        return [("executing", {"node": event.node_id, "display_node": event.node_id,
                               "prompt_id": pid})]
    if kind == "node_progress":
        return [("progress", {"value": event.data.get("value"), "max": event.data.get("max"),
                              "prompt_id": pid, "node": event.node_id})]
    if kind == "node_finished":
        if event.data.get("ui"):
            return [("executed", {"node": event.node_id, "display_node": event.node_id,
                                  "output": event.data["ui"], "prompt_id": pid})]
        return []
    if kind == "run_finished":
        return [("executing", {"node": None, "prompt_id": pid}), terminal_message(record, event)]
    if kind in ("run_failed", "run_cancelled"):
        return [terminal_message(record, event)]
    return []
