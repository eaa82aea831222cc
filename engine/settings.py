"""All ``HOMEPILOT_*`` settings in one object."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOMEPILOT_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".homepilot")
    # A path list (like PATH); empty means $HOMEPILOT_HOME/custom_nodes.
    custom_nodes: str = ""
    executor: Literal["ray", "local"] = "ray"
    ray_address: str | None = None
    ray_dashboard: bool = True
    ray_dashboard_port: int = 8265
    # Light nodes in a chain share one Ray task (see engine/executors/ray.py).
    ray_fuse: bool = True
    # Worker processes a local Ray keeps alive when idle. Model-bound node tasks hold a
    # quarter CPU each, so more of them run at once than there are cores; with Ray's
    # default (one per CPU) every burst of requests would start (and import) new workers.
    ray_warm_workers: int = 8
    cache_max_entries: int = 20_000
    cache_max_bytes: int = 2 * 1024**3
    local_workers: int = 8
    # Loaded models stay resident until their declared memory would pass this budget.
    model_memory_budget: int = 8 * 1024**3
    graphs_dir: Path | None = None
    # Folders image.Load may read besides the file store, the input folder and the models
    # folder (a path list like PATH). Graphs come from requests: they may not read the disk.
    read_dirs: str = ""
    max_upload_mb: int = 25
    # Seconds an incognito chat's pictures and videos stay fetchable before they are swept.
    incognito_ttl: float = 3600.0
    # When set, every endpoint but /health needs it (Bearer or X-API-Key).
    api_key: str = ""
    public_base_url: str = ""
    # Where API keys are checked (overridable for tests and mirrors).
    huggingface_url: str = "https://huggingface.co"
    civitai_url: str = "https://civitai.com"
    llm_base_url: str = "http://127.0.0.1:11434/v1"
    ollama_base_url: str = "http://127.0.0.1:11434"
    host: str = "127.0.0.1"
    port: int = 8000
    # Media URLs may not reach private or loopback addresses (SSRF) unless their host or
    # network is listed here: comma-separated host names, IPs or CIDRs ("10.0.0.0/8").
    fetch_allow: str = ""
    fetch_timeout: float = 20.0
    cors_origins: str = ("http://localhost:3000,http://localhost:3001,http://localhost:5173,"
                         "http://127.0.0.1:5173,http://127.0.0.1:3001")

    @field_validator("home", mode="before")
    @classmethod
    def _expand(cls, value: object) -> object:
        return Path(os.path.expanduser(str(value))) if value else value

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def input_dir(self) -> Path:
        return self.home / "input"

    @property
    def user_dir(self) -> Path:
        """The visual editor's per-user files (workflows, keybindings, ...)."""
        return self.home / "user"

    @property
    def user_graphs_dir(self) -> Path:
        """Graphs users made (saved from the editor, or written by hand): ``user/<name>``."""
        return self.home / "graphs"

    def extra_read_dirs(self) -> list[Path]:
        return [Path(os.path.expanduser(p)) for p in self.read_dirs.split(os.pathsep) if p]

    def readable_dirs(self) -> list[Path]:
        """Where nodes may read files: the file store, the input folder, the models
        folder and ``HOMEPILOT_READ_DIRS``."""
        return [self.home / "files", self.input_dir, self.models_dir, *self.extra_read_dirs()]

    def fetch_allow_list(self) -> list[str]:
        return [h.strip() for h in self.fetch_allow.split(",") if h.strip()]

    def trusted_urls(self) -> list[str]:
        """Provider URLs the operator configured: outbound calls may reach their origins
        even on a private address, and only they are sent stored keys."""
        return [u for u in (self.llm_base_url, self.ollama_base_url) if u]

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def custom_node_dirs(self) -> list[Path]:
        if self.custom_nodes.strip():
            return [Path(os.path.expanduser(p)) for p in self.custom_nodes.split(os.pathsep) if p]
        return [self.home / "custom_nodes"]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
