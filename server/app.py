"""The FastAPI application: state, routers, error handlers, pack routes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from engine.executors.base import Executor
from engine.files import FileStore
from engine.models.store import ModelStore
from engine.registry import Registry
from engine.settings import Settings, get_settings
from server import editor, errors
from server.auth import ApiKeyGuard
from server.bodylimit import BodyLimit
from server.crosssite import CrossSiteGuard
from server.housekeeping import sweep_forever
from server.hub import ClientHub
from server.looplag import LoopLag
from server.packroutes import PackRoutes
from server.prompt_server import PromptServer
from server.routers import (
    chat,
    comfy,
    conversations,
    core,
    edit_sessions,
    enhance,
    files,
    graphs,
    health,
    knowledge,
    openai,
    personalities,
    personas,
    personas_package,
    presets,
    projects,
    uploads,
)
from server.routers import (
    settings as settings_routes,
)
from server.services.runs import RunService
from server.state import AppState
from server.storage.api_keys import ApiKeys
from server.storage.conversations import Conversations
from server.storage.database import Database
from server.storage.edit_sessions import EditSessions
from server.storage.editor_settings import EditorSettings
from server.storage.expiring import ExpiringFiles
from server.storage.journal import RunJournal
from server.storage.knowledge import KnowledgeBase
from server.storage.preferences import Preferences
from server.storage.projects import Projects
from server.storage.references import FileReferences
from server.storage.secrets import SecretBox
from server.version import VERSION

log = logging.getLogger("homepilot.server")

REPO_GRAPHS = Path(__file__).resolve().parent.parent / "graphs"


def build_registry(settings: Settings, extra_dirs: list[str] | None = None) -> Registry:
    from nodes import build_registry as build

    dirs = [str(d) for d in settings.custom_node_dirs()] + list(extra_dirs or [])
    return build(dirs)


def build_executor(settings: Settings, registry: Registry, kind: str | None = None) -> Executor:
    from nodes.backends.bundled import register_bundled

    register_bundled(ModelStore(settings.models_dir))
    kind = kind or settings.executor
    if kind == "local":
        from engine.executors.local import LocalExecutor
        return LocalExecutor(registry)
    from engine.executors.ray import RayExecutor
    return RayExecutor(registry, address=settings.ray_address)


def create_app(settings: Settings | None = None, registry: Registry | None = None,
               executor: Executor | None = None) -> FastAPI:
    settings = settings or get_settings()
    registry = registry or build_registry(settings)
    owns_executor = executor is None
    executor = executor or build_executor(settings, registry)
    hub = ClientHub()
    db = Database(settings.home / "homepilot.duckdb")
    store = FileStore(settings.home / "files")
    references = FileReferences(db)
    journal = RunJournal(db)
    interrupted = journal.recover()
    if interrupted:
        log.warning("%d run(s) were going when the server last stopped; marked failed",
                    interrupted)
    removed = store.remove_partial()
    if removed:
        log.warning("removed %d half-written file(s) left by the last stop", removed)
    state = AppState(settings=settings, registry=registry, executor=executor,
                     runs=RunService(executor, journal=journal), files=store,
                     hub=hub, graphs_dir=settings.graphs_dir or REPO_GRAPHS,
                     model_store=ModelStore(settings.models_dir), db=db,
                     conversations=Conversations(db),
                     api_keys=ApiKeys(db, SecretBox(settings.home / "secret.key")),
                     edit_sessions=EditSessions(db), preferences=Preferences(db),
                     references=references,
                     expiring=ExpiringFiles(db, store, references), loop_lag=LoopLag(),
                     editor_settings=EditorSettings(db), projects=Projects(db))
    pack_routes = PackRoutes()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        PromptServer.instance.sink = hub.send
        await pack_routes.start()
        chores = [asyncio.create_task(sweep_forever(state)),
                  asyncio.create_task(state.loop_lag.watch())]
        # Knowledge bases' BM25 postings are built before the first question needs them.
        warmed = threading.Event()
        warming = asyncio.create_task(asyncio.to_thread(_warm, KnowledgeBase(db), warmed))
        try:
            yield
        finally:
            for chore in chores:
                chore.cancel()
            warmed.set()  # the project being built finishes; the database closes after
            await warming
            await pack_routes.stop()
            for record in state.runs.running():
                record.handle.cancel()
            if owns_executor:
                executor.close()
            journal.flush()
            db.close()

    app = FastAPI(title="HomePilot", version=VERSION, lifespan=lifespan,
                  description="Local-first generative-AI server; every feature is a node graph.")
    app.state.homepilot = state
    # The last added runs first: CORS (answers preflights, labels every answer), then the
    # API key, then the body cap, then the cross-site check, then the routes.
    origins = settings.cors_origin_list()
    app.add_middleware(CrossSiteGuard, allowed_origins=origins)
    # The upload cap plus room for multipart's boundaries and headers.
    app.add_middleware(BodyLimit, max_bytes=(settings.max_upload_mb + 1) * 1024**2)
    if settings.api_key:
        app.add_middleware(ApiKeyGuard, key=settings.api_key)
    # Credentials (cookies, auth headers) only for origins named one by one: with "*" any
    # site could read answers made with the user's credentials.
    app.add_middleware(CORSMiddleware, allow_origins=origins,
                       allow_credentials="*" not in origins, allow_methods=["*"],
                       allow_headers=["*"])
    errors.install(app)
    for module in (health, core, chat, conversations, uploads, settings_routes, presets, graphs,
                   comfy, files, openai, enhance, edit_sessions, projects, knowledge,
                   personas_package, personalities, personas):
        app.include_router(module.router, responses=errors.RESPONSES)
    editor.mount(app)
    pack_routes.mount(app)
    return app


def _warm(base: KnowledgeBase, stop: threading.Event) -> None:
    """Build the knowledge bases' BM25 postings; a failure only costs the first search
    of a project its build, so it is logged, not raised."""
    try:
        built = base.lexicon.warm(stop)
        log.info("BM25 postings ready for %d knowledge bases", built)
    except Exception:  # noqa: BLE001 (any failure: searches build on demand)
        log.exception("building the BM25 postings at start failed; they are built on "
                      "each project's first search instead")
