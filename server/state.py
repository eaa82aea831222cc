"""What the app holds for its lifetime, built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.executors.base import Executor
from engine.files import FileStore
from engine.models.store import ModelStore
from engine.registry import Registry
from engine.settings import Settings
from server.hub import ClientHub
from server.looplag import LoopLag
from server.services.runs import RunService
from server.storage.api_keys import ApiKeys
from server.storage.conversations import Conversations
from server.storage.database import Database
from server.storage.edit_sessions import EditSessions
from server.storage.editor_settings import EditorSettings
from server.storage.expiring import ExpiringFiles
from server.storage.preferences import Preferences
from server.storage.projects import Projects
from server.storage.references import FileReferences


@dataclass
class AppState:
    settings: Settings
    registry: Registry
    executor: Executor
    runs: RunService
    files: FileStore
    hub: ClientHub
    graphs_dir: Path
    model_store: ModelStore
    db: Database
    conversations: Conversations
    api_keys: ApiKeys
    edit_sessions: EditSessions
    preferences: Preferences
    references: FileReferences
    expiring: ExpiringFiles
    loop_lag: LoopLag
    editor_settings: EditorSettings
    projects: Projects
