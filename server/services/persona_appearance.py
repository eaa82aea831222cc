"""Best-effort auto-commit of a persona's pictures on POST /projects and PUT
/projects/{id}: every picture of ``persona_appearance`` (set and outfit images, outfit
view packs) that is one of this server's own files (``/files/...``, ``/view?...``,
``/comfy/view/...``) is copied into the persona's folder and its URL rewritten to
``/files/projects/<id>/persona/appearance/<name>``, so the persona keeps its pictures
when the originals are cleaned up; the selected picture also becomes the avatar (with
its thumbnail, recorded as a version).

Best effort: a URL that is not ours or whose file is missing or not a picture stays as
it is, and the request succeeds. Nothing is ever downloaded.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.files import write_atomic
from server.errors import ApiError
from server.services import avatar, avatar_history
from server.state import AppState
from server.storage.projects import Project, Projects

VIEWS = ("front", "left", "right", "back")
Rewrite = Callable[[Any], Any]


def copy_in(state: AppState, project_id: str, source: Path, name: str) -> str:
    """Copy a picture into the persona's folder as ``img_<stem>_<8 hex of its bytes>``
    (the same picture is stored once, however often it is committed); its store path.
    400 when it is no picture."""
    data = source.read_bytes()
    suffix = avatar.checked_image(data, f"Image {name}")
    digest = hashlib.sha256(data).hexdigest()[:8]
    target = avatar.appearance_folder(state, project_id) / \
        f"img_{avatar.safe_stem(name)[:60]}_{digest}{suffix}"
    if not target.is_file() or target.read_bytes() != data:
        write_atomic(target, data)
    return avatar.relative(state, target)


def own_url(project_id: str, url: Any) -> bool:
    """A URL already naming this persona's folder: nothing to copy."""
    prefix = f"/files/projects/{project_id}/{'/'.join(avatar.APPEARANCE)}/"
    return isinstance(url, str) and url.startswith(prefix)


class _Localizer:
    """Called with a picture URL, gives its rewritten URL (the same value when it cannot
    be made local); a picture named twice is copied once. ``names``: each new URL's
    original file name (the avatar is named after the picture, not after its copy)."""

    def __init__(self, state: AppState, project_id: str, hosts: set[str]) -> None:
        self.state, self.project_id, self.hosts = state, project_id, hosts
        self.done: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def __call__(self, url: Any) -> Any:
        if not isinstance(url, str) or own_url(self.project_id, url):
            return url
        if url not in self.done:
            self.done[url] = url
            found = avatar.local_picture(self.state, url, self.hosts)
            if found is not None:
                try:
                    local = "/files/" + copy_in(self.state, self.project_id, *found)
                except ApiError:  # not a picture: left as it is
                    return url
                self.done[url], self.names[local] = local, found[1]
        return self.done[url]


def _images(group: dict[str, Any], rewrite: Rewrite) -> dict[str, Any]:
    images = group.get("images")
    if isinstance(images, list):
        group["images"] = [{**i, "url": rewrite(i.get("url"))} if isinstance(i, dict) and
                           "url" in i else i for i in images]
    return group


def _view_pack(outfit: dict[str, Any], rewrite: Rewrite) -> dict[str, Any]:
    pack = outfit.get("view_pack")
    if isinstance(pack, dict):
        # A view is a URL, or an image object with a url (both appear in the wild).
        outfit["view_pack"] = {
            k: (rewrite(v) if isinstance(v, str) else
                {**v, "url": rewrite(v.get("url"))} if isinstance(v, dict) and "url" in v
                else v) for k, v in pack.items()}
    return outfit


def rewritten(appearance: dict[str, Any], rewrite: Rewrite) -> dict[str, Any]:
    """A copy of ``appearance`` with every set, outfit and view-pack picture URL passed
    through ``rewrite``."""
    shown = copy.deepcopy(appearance)
    if isinstance(shown.get("sets"), list):
        shown["sets"] = [_images(s, rewrite) if isinstance(s, dict) else s
                         for s in shown["sets"]]
    if isinstance(shown.get("outfits"), list):
        shown["outfits"] = [_view_pack(_images(o, rewrite), rewrite) if isinstance(o, dict)
                            else o for o in shown["outfits"]]
    return shown


def _selected_avatar(state: AppState, project_id: str, appearance: dict[str, Any],
                     hosts: set[str], names: dict[str, str]) -> dict[str, str] | None:
    """The avatar paths for the selected picture when they need writing: None when
    nothing local is selected or the avatar already shows it."""
    try:
        url = avatar.selected_url(appearance)
    except ApiError:
        return None
    found = avatar.local_picture(state, url, hosts)
    if found is None or avatar_history.shows(state, appearance.get("selected_filename"), found[0]):
        return None
    try:
        return avatar.commit(state, project_id, found[0], names.get(url, found[1]))
    except ApiError:  # undecodable: the avatar stays as it was
        return None


def localize(state: AppState, project_id: str, appearance: dict[str, Any],
             hosts: set[str]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The appearance with its own pictures copied in and URLs rewritten, and the new
    avatar paths when the selected picture became the avatar."""
    localizer = _Localizer(state, project_id, hosts)
    shown = rewritten(appearance, localizer)
    paths = _selected_avatar(state, project_id, shown, hosts, localizer.names)
    if paths:
        shown.update(paths)
    return shown, paths


def _record(state: AppState, project_id: str, paths: dict[str, str]) -> None:
    with state.db.write() as cursor:
        avatar_history.record_in(cursor, project_id, paths, "commit")


def create(state: AppState, fields: dict[str, Any], hosts: set[str]) -> Project:
    """POST /projects: a persona's pictures committed before its row is written (under
    its id chosen first); other projects as they come."""
    appearance = fields.get("persona_appearance")
    if fields.get("project_type") != "persona" or not isinstance(appearance, dict):
        return state.projects.create(fields)
    project_id = str(uuid.uuid4())
    try:
        shown, paths = localize(state, project_id, appearance, hosts)
        created = state.projects.create({**fields, "persona_appearance": shown},
                                        project_id=project_id)
    except BaseException:  # no row: no folder either
        shutil.rmtree(avatar.appearance_folder(state, project_id).parent.parent, True)
        raise
    if paths:
        _record(state, project_id, paths)
    return created


def update(state: AppState, project_id: str, changes: dict[str, Any],
           hosts: set[str]) -> Project | None:
    """PUT /projects/{id}: for a persona whose appearance changes (or that becomes one),
    its pictures committed and the avatar synced with the change, in one transaction
    with the version it adds. None when there is no such project."""
    found = state.projects.get(project_id)
    if found is None:
        return None
    persona = (changes.get("project_type") or found.project_type) == "persona"
    asked = changes.get("persona_appearance")
    if not persona or not (isinstance(asked, dict) or found.project_type != "persona"):
        return state.projects.update(project_id, changes)
    stored = found.extra.get("persona_appearance") or {}
    merged = {**stored, **(asked or {})}
    shown, paths = localize(state, project_id, merged, hosts)
    delta = {k: v for k, v in shown.items() if k in (asked or {}) or stored.get(k) != v}
    with state.db.write() as cursor:
        if paths:
            avatar_history.record_in(cursor, project_id, paths, "commit")
        if not Projects.update_in(cursor, project_id,
                                  {**changes, "persona_appearance": delta}):
            return None
    return state.projects.get(project_id)



# -- a generated set ---------------------------------------------------------------------

def _generated_sources(state: AppState, urls: list[str],
                       hosts: set[str]) -> list[tuple[Path, str]]:
    """Every URL as a local picture, all checked before anything is written: 400 for a
    URL that is not ours or not a picture, 404 for a missing file."""
    sources = []
    for url in urls:
        path, name = avatar.url_source(state, url, hosts)
        if path is None or path.is_symlink() or not path.is_file():
            raise ApiError(404, "source_not_found", f"Source image not found: {name}")
        avatar.checked_image(path.read_bytes(), f"Image {url}")
        sources.append((path, name))
    return sources


def commit_generated(state: AppState, project: Project, urls: list[str], set_id: str | None,
                     prompt: str | None, select: int | None,
                     hosts: set[str]) -> tuple[Project, dict[str, Any]]:
    """Add the pictures as a new set of ``persona_appearance.sets`` (copied into the
    persona's folder); ``select``: the index of the one to make the avatar."""
    if select is not None and select >= len(urls):
        raise ApiError(400, "bad_select", f"select {select} is past the {len(urls)} images")
    appearance = project.extra.get("persona_appearance") or {}
    sets = list(appearance["sets"]) if isinstance(appearance.get("sets"), list) else []
    set_id = set_id or f"set_{uuid.uuid4().hex[:12]}"
    if any(isinstance(s, dict) and s.get("set_id") == set_id for s in sets):
        raise ApiError(409, "set_exists", f"The persona already has a set {set_id!r}")
    sources = _generated_sources(state, urls, hosts)
    images = [{"id": f"img{i + 1}", "url": "/files/" + copy_in(state, project.id, *source)}
              for i, source in enumerate(sources)]
    added: dict[str, Any] = {"set_id": set_id, "images": images, "created_at": time.time()}
    if prompt:
        added["prompt"] = prompt
    changes: dict[str, Any] = {"sets": [*sets, added]}
    if select is None:
        updated = state.projects.update(project.id, {"persona_appearance": changes})
    else:
        changes["selected"] = {"set_id": set_id, "image_id": images[select]["id"]}
        updated, _ = avatar_history.commit_version(state, project.id, *sources[select],
                                                   "generated", urls[select], extra=changes)
    if updated is None:
        raise ApiError(404, "not_found", f"Project '{project.id}' not found")
    return updated, added
