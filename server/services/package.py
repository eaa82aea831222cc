""".hpersona packages: a persona project as a zip, and back.

Layout (v2, ``ZIP_DEFLATED``): ``manifest.json``; ``blueprint/persona_agent.json``,
``persona_appearance.json``, ``agentic.json``; ``dependencies/{tools,mcp_servers,
a2a_agents,models,suite}.json``; ``preview/card.json``; ``assets/`` with the avatar
(``avatar_<stem>.<ext>``), its 256×256 ``thumb_avatar_<stem>.webp`` and outfit pictures,
flat. v1 packages (no ``dependencies/``, no ``agentic.json``) import too; v3 packages add
runtime profiles (``blueprint/cognitive_profile.json`` and the like), kept on the
project and exported again (with ``schema_version: 3``).

A package is parsed whole, in memory and within caps (``archive``), and every part is
checked before anything is written; an import writes its files under a hidden staging
folder and renames it into place before the project row exists, so a refusal or a
failure leaves neither files nor rows.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from engine.files import write_atomic
from server.errors import ApiError
from server.services import archive, avatar, dependency
from server.state import AppState
from server.storage.projects import Project
from server.version import VERSION

PACKAGE_VERSION = 2
SCHEMA_VERSION = 2
MAX_SCHEMA = 3  # v3 adds runtime profiles (kept and exported, not acted on); rest is v2
PROFILE_SCHEMA = 3  # what an export carrying profiles says it is
KIND = "homepilot.persona"
MAX_JSON_BYTES = 1024**2
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
DEPENDENCIES = ("tools", "mcp_servers", "a2a_agents", "models", "suite")
# v3 runtime profiles (``blueprint/<name>.json``): kept on the project as
# ``persona_agent.profiles[<name>]`` and written back on export, so a v3 package
# round-trips even though this server does not act on them.
PROFILES = ("cognitive_profile", "embodiment_profile", "vr_profile", "voice_profile",
            "relationship_model")
PROFILES_KEY = "profiles"
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
Mode = Literal["blueprint", "full"]


@dataclass
class Package:
    manifest: dict[str, Any]
    persona_agent: dict[str, Any]
    persona_appearance: dict[str, Any]
    agentic: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, dict[str, Any]] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    assets: dict[str, bytes] = field(default_factory=dict)  # flat name -> checked picture
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # v3, by name

    def avatar_name(self) -> str | None:
        """The avatar asset: the one ``selected_filename`` names, else the first
        ``avatar_*``."""
        named = _basename(self.persona_appearance.get("selected_filename"))
        if named in self.assets:
            return named
        return next((n for n in sorted(self.assets) if n.startswith("avatar_")), None)

    def thumb_name(self) -> str | None:
        named = _basename(self.persona_appearance.get("selected_thumb_filename"))
        if named in self.assets and named.endswith(".webp"):
            return named
        chosen = self.avatar_name()
        paired = f"thumb_{PurePosixPath(chosen).stem}.webp" if chosen else None
        return paired if paired in self.assets else None


def _basename(value: Any) -> str | None:
    return PurePosixPath(value.replace("\\", "/")).name if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """A list field of free-form persona JSON (anything else counts as empty)."""
    return value if isinstance(value, list) else []


# -- export ----------------------------------------------------------------------------

def safe_filename(name: str) -> str:
    """The download's name: letters, digits, '-' and '_' only (no quotes, no paths)."""
    kept = "".join(c for c in name if c.isascii() and (c.isalnum() or c in "-_"))
    return f"{kept[:80] or 'persona'}.hpersona"


def _collect_assets(state: AppState, project: Project, mode: Mode) -> dict[str, Path]:
    """Pictures to pack by flat name: the avatar, its thumbnail and outfit pictures the
    persona names (they must resolve inside the file store), then in ``full`` mode every
    other picture of the persona's folder. Links are never followed."""
    appearance = _dict(project.extra.get("persona_appearance"))
    named = [appearance.get("selected_filename"), appearance.get("selected_thumb_filename")]
    for outfit in _list(appearance.get("outfits")):
        if isinstance(outfit, dict):
            named += [outfit.get("filename"), outfit.get("thumb_filename")]
    found: dict[str, Path] = {}
    candidates = [avatar.store_path(state, n) for n in named if isinstance(n, str)]
    if mode == "full":
        folder = avatar.appearance_folder(state, project.id)
        if folder.is_dir() and not folder.is_symlink():
            candidates += sorted(folder.iterdir())
    for path in candidates:
        if path is None or path.is_symlink() or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and _ASSET.match(path.name):
            found.setdefault(path.name, path)
    return found


def profiles(agent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The v3 profiles a persona keeps (``persona_agent.profiles``), known names only."""
    kept = _dict(agent.get(PROFILES_KEY))
    return {name: kept[name] for name in PROFILES if isinstance(kept.get(name), dict)}


def manifest(project: Project, deps: dict[str, dict[str, Any]], has_avatar: bool,
             mode: Mode) -> dict[str, Any]:
    agent = _dict(project.extra.get("persona_agent"))
    appearance = _dict(project.extra.get("persona_appearance"))
    agentic = _dict(project.extra.get("agentic"))
    outfits = _list(appearance.get("outfits"))
    return {
        "package_version": PACKAGE_VERSION, "kind": KIND,
        "schema_version": PROFILE_SCHEMA if profiles(agent) else SCHEMA_VERSION,
        "project_type": "persona", "source_project_id": project.id,
        "source_homepilot_version": VERSION, "created_at": time.time(), "export_mode": mode,
        "content_rating": "nsfw" if appearance.get("nsfwMode") else "sfw",
        "memory_mode": agent.get("memory_mode") or "adaptive",
        "contents": {
            "has_avatar": has_avatar, "has_outfits": bool(outfits),
            "outfit_count": len(outfits), "has_voice": bool(appearance.get("persona_voice")),
            "has_tool_dependencies": bool(deps["tools"]["personality_tools"]["tools"]
                                          or deps["tools"]["forge_tools"]["tools"]),
            "has_mcp_servers": bool(deps["mcp_servers"]["servers"]),
            "has_a2a_agents": bool(deps["a2a_agents"]["agents"]),
            "has_model_requirements": bool(deps["models"]["image_models"])},
        "capability_summary": {
            "personality_tools": deps["tools"]["personality_tools"]["tools"],
            "capabilities": _list(agentic.get("capabilities")),
            "mcp_servers_count": len(deps["mcp_servers"]["servers"]),
            "a2a_agents_count": len(deps["a2a_agents"]["agents"])},
    }


def card(project: Project, has_avatar: bool) -> dict[str, Any]:
    agent = _dict(project.extra.get("persona_agent"))
    appearance = _dict(project.extra.get("persona_appearance"))
    return {
        "name": agent.get("label") or project.name,
        "short": agent.get("short") or project.description,
        "role": agent.get("role") or "", "category": agent.get("category") or "general",
        "tone": _dict(agent.get("response_style")).get("tone") or "",
        "style_preset": appearance.get("style_preset") or "",
        "capabilities_count": len(_list(_dict(project.extra.get("agentic")).get(
            "capabilities"))),
        "tools_count": len(_list(agent.get("allowed_tools"))), "has_avatar": has_avatar,
        "has_voice": bool(appearance.get("persona_voice")),
        "content_rating": "nsfw" if appearance.get("nsfwMode") else "sfw",
        "memory_mode": agent.get("memory_mode") or "adaptive"}


def export(state: AppState, project: Project, mode: Mode) -> tuple[str, bytes]:
    """The package's file name and bytes."""
    if project.project_type != "persona":
        raise ApiError(400, "not_persona", "Not a persona project")
    public = project.public()
    deps = dependency.manifests(public, state.model_store)
    assets = _collect_assets(state, project, mode)
    has_avatar = any(n.startswith("avatar_") for n in assets)
    agent = _dict(public.get("persona_agent"))
    kept = profiles(agent)
    parts: dict[str, Any] = {
        "manifest.json": manifest(project, deps, has_avatar, mode),
        # The profiles travel as their own files, as a v3 package has them.
        "blueprint/persona_agent.json": {k: v for k, v in agent.items()
                                         if not (k == PROFILES_KEY and kept)},
        **{f"blueprint/{name}.json": body for name, body in kept.items()},
        "blueprint/persona_appearance.json": public.get("persona_appearance") or {},
        "blueprint/agentic.json": public.get("agentic") or {},
        **{f"dependencies/{name}.json": deps[name] for name in DEPENDENCIES},
        "preview/card.json": card(project, has_avatar)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name, value in parts.items():
            package.writestr(name, json.dumps(value, indent=2, ensure_ascii=False))
        for name, path in sorted(assets.items()):
            package.writestr(f"assets/{name}", path.read_bytes())
    return safe_filename(project.name or str(agent.get("label") or "")), out.getvalue()


# -- reading a package -------------------------------------------------------------------

def _json(files: dict[str, bytes], name: str, required: bool = False) -> dict[str, Any]:
    if name not in files:
        if required:
            raise archive.refuse(f"Package has no {name}")
        return {}
    body = files[name]
    if len(body) > MAX_JSON_BYTES:
        raise archive.refuse(f"{name} is larger than {MAX_JSON_BYTES:,} bytes")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise archive.refuse(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise archive.refuse(f"{name} must hold a JSON object")
    return value


def _schema_version(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise archive.refuse(f"manifest schema_version {value!r} is not a number")
    try:
        version = int(value)
    except ValueError as exc:
        raise archive.refuse(f"manifest schema_version {value!r} is not a number") from exc
    if version > MAX_SCHEMA:
        raise archive.refuse(f"Package schema_version {version} is newer than this "
                             f"HomePilot (max {MAX_SCHEMA})")
    if version < 1:
        raise archive.refuse(f"Package schema_version {version} is not valid")
    return version


def _assets(files: dict[str, bytes]) -> dict[str, bytes]:
    """The pictures under ``assets/``: flat, safe names, picture names and picture bytes
    (checked by content and decoded within the pixel cap); anything else is refused."""
    found: dict[str, bytes] = {}
    for name, body in files.items():
        if not name.startswith("assets/"):
            continue
        flat = name[len("assets/"):]
        if not _ASSET.match(flat) or PurePosixPath(flat).suffix.lower() not in IMAGE_SUFFIXES:
            raise archive.refuse(f"Asset {name!r} is not a flat picture name "
                                 "(png, jpg, gif or webp)")
        suffix = avatar.checked_image(body, f"Asset {name!r}")
        if flat.startswith("thumb_") and suffix != ".webp":
            raise archive.refuse(f"Thumbnail {name!r} is not a WebP picture")
        found[flat] = body
    return found


def parse(data: bytes) -> Package:
    """A checked package, or a 400 naming the first problem."""
    files = archive.read_zip(data)
    head = _json(files, "manifest.json", required=True)
    if head.get("kind") != KIND:
        raise archive.refuse(f"Invalid package kind {head.get('kind')!r}; expected {KIND!r}")
    _schema_version(head.get("schema_version"))
    return Package(
        manifest=head, persona_agent=_json(files, "blueprint/persona_agent.json", True),
        persona_appearance=_json(files, "blueprint/persona_appearance.json"),
        agentic=_json(files, "blueprint/agentic.json"),
        dependencies={n: _json(files, f"dependencies/{n}.json") for n in DEPENDENCIES
                      if f"dependencies/{n}.json" in files},
        card=_json(files, "preview/card.json"), assets=_assets(files),
        profiles={n: _json(files, f"blueprint/{n}.json") for n in PROFILES
                  if f"blueprint/{n}.json" in files})


def preview(state: AppState, package: Package) -> dict[str, Any]:
    """What importing would create, and what of its dependencies this server has."""
    shown = package.avatar_name()
    source = package.assets.get(package.thumb_name() or "") or package.assets.get(shown or "")
    data_url = None
    if source is not None:
        data_url = "data:image/webp;base64," + base64.b64encode(
            avatar.thumbnail(source)).decode("ascii")
    return {"ok": True, "manifest": package.manifest, "persona_agent": package.persona_agent,
            "persona_appearance": package.persona_appearance, "agentic": package.agentic,
            "dependencies": package.dependencies, "has_avatar": shown is not None,
            "profiles": package.profiles,
            "asset_names": sorted(package.assets),
            "dependency_check": dependency.check(package.dependencies,
                                                 state.model_store).model_dump(),
            "avatar_preview_data_url": data_url}


# -- import ----------------------------------------------------------------------------

def _appearance(package: Package, prefix: str, thumb: str | None) -> dict[str, Any]:
    """The imported appearance: store paths moved to the new project's folder (dropped
    when the package lacks the file), ``sets`` cleared (their URLs belong to the
    exporting server), ``avatar_settings`` seeded when missing."""
    appearance = dict(package.persona_appearance)
    chosen = package.avatar_name()
    for key, name in (("selected_filename", chosen), ("selected_thumb_filename", thumb)):
        if name:
            appearance[key] = prefix + name
        else:
            appearance.pop(key, None)
    outfits = []
    for outfit in _list(appearance.get("outfits")):
        if isinstance(outfit, dict):
            outfit = dict(outfit)
            for key in ("filename", "thumb_filename"):
                name = _basename(outfit.get(key))
                if name in package.assets:
                    outfit[key] = prefix + name
                else:
                    outfit.pop(key, None)
        outfits.append(outfit)
    if "outfits" in appearance:
        appearance["outfits"] = outfits
    if "sets" in appearance:
        appearance["sets"] = []
    if not isinstance(appearance.get("avatar_settings"), dict):
        appearance["avatar_settings"] = {
            "style_preset": appearance.get("style_preset") or "",
            "gender": appearance.get("gender") or "",
            "img_model": dependency.image_model_name(appearance),
            "nsfw_mode": bool(appearance.get("nsfwMode"))}
    return appearance


def _agentic(package: Package) -> dict[str, Any]:
    """The package's agentic settings, its gateway tools pinned when it names none."""
    agentic = dict(package.agentic)
    forge = _dict(_dict(package.dependencies.get("tools")).get("forge_tools")).get("tools")
    ids = [str(t["id"]) for t in _list(forge) if isinstance(t, dict) and t.get("id")]
    if ids and not agentic.get("tool_ids"):
        agentic["tool_ids"] = ids
    return agentic


def install(state: AppState, package: Package,
            extra: dict[str, Any] | None = None) -> Project:
    """A new persona project from a parsed package, its pictures in its folder; ``extra``
    are more project fields written with it (in the same row, so all or nothing)."""
    project_id = str(uuid.uuid4())
    prefix = f"projects/{project_id}/{'/'.join(avatar.APPEARANCE)}/"
    files = dict(package.assets)
    thumb = package.thumb_name()
    chosen = package.avatar_name()
    if chosen and not thumb:
        thumb = f"thumb_{PurePosixPath(chosen).stem}.webp"
        files[thumb] = avatar.thumbnail(files[chosen])
    agent = dict(package.persona_agent)
    if package.profiles:
        agent[PROFILES_KEY] = {**_dict(agent.get(PROFILES_KEY)), **package.profiles}
    name = str(agent.get("label") or "Imported Persona")[:200].strip() or "Imported Persona"
    description = next((str(v) for v in (package.card.get("short"), agent.get("role"),
                                         agent.get("category")) if v), "Persona")
    fields: dict[str, Any] = {
        "name": name, "description": description[:10_000], "project_type": "persona",
        "persona_agent": agent, "persona_appearance": _appearance(package, prefix, thumb)}
    agentic = _agentic(package)
    if agentic:
        fields["agentic"] = agentic
    fields.update(extra or {})
    projects = state.files.root / "projects"
    staging = projects / f".import-{project_id}"
    target = projects / project_id
    try:
        for asset_name, body in files.items():
            write_atomic(staging.joinpath(*avatar.APPEARANCE, asset_name), body)
        if files:
            os.replace(staging, target)
        return state.projects.create(fields, project_id=project_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        raise
