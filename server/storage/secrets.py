"""Encryption at rest for stored secrets (Fernet), keyed by a file only the owner reads."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypts with the key in ``key_file``, created (mode 0600) on first use."""

    def __init__(self, key_file: str | Path) -> None:
        self.key_file = Path(key_file)
        self._fernet = Fernet(self._key())

    def _key(self) -> bytes:
        if self.key_file.exists():
            return self.key_file.read_bytes().strip()
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        # O_EXCL: two processes starting at once cannot both write a different key.
        try:
            descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.key_file.read_bytes().strip()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        return key

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str | None:
        """The secret, or None when it was sealed with another key (the key file changed)."""
        try:
            return self._fernet.decrypt(bytes(sealed)).decode()
        except InvalidToken:
            return None
