"""Provider API keys: stored encrypted, only ever shown masked."""

from __future__ import annotations

import os

from pydantic import BaseModel

from server.storage.database import Database
from server.storage.secrets import SecretBox

# provider -> the environment variable that may hold its key instead
PROVIDERS = {"huggingface": "HF_TOKEN", "civitai": "CIVITAI_API_KEY",
             "openai_compat": "OPENAI_API_KEY"}


class KeyStatus(BaseModel):
    configured: bool
    source: str  # environment | stored | none
    masked: str | None
    env_var: str


def mask(key: str) -> str:
    return f"{key[:4]}****{key[-4:]}" if len(key) > 8 else "****"


class ApiKeys:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box

    def stored(self, provider: str) -> str | None:
        rows = self.db.read("SELECT ciphertext FROM api_keys WHERE provider = ?", [provider])
        return self.box.open(rows[0][0]) if rows else None

    def key(self, provider: str) -> str | None:
        """The key to use: the stored one, else the environment's."""
        return self.stored(provider) or os.environ.get(PROVIDERS[provider]) or None

    def status(self, provider: str) -> KeyStatus:
        env_var = PROVIDERS[provider]
        stored = self.stored(provider)
        if stored:
            return KeyStatus(configured=True, source="stored", masked=mask(stored),
                             env_var=env_var)
        from_env = os.environ.get(env_var)
        if from_env:
            return KeyStatus(configured=True, source="environment", masked=mask(from_env),
                             env_var=env_var)
        return KeyStatus(configured=False, source="none", masked=None, env_var=env_var)

    def save(self, provider: str, key: str) -> None:
        sealed = self.box.seal(key)
        with self.db.write() as cursor:
            cursor.execute("INSERT OR REPLACE INTO api_keys (provider, ciphertext, updated_at) "
                           "VALUES (?, ?, current_timestamp)", [provider, sealed])

    def delete(self, provider: str) -> bool:
        with self.db.write() as cursor:
            (count,) = cursor.execute("SELECT count(*) FROM api_keys WHERE provider = ?",
                                      [provider]).fetchone()
            cursor.execute("DELETE FROM api_keys WHERE provider = ?", [provider])
        return bool(count)
