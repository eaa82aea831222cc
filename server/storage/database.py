"""The DuckDB database: opening, extensions, migrations, serialized writes."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger("homepilot.storage")
MIGRATIONS = Path(__file__).parent / "migrations"


class StorageError(Exception):
    """The database could not be opened or migrated; the message says what to do."""


def extension_path(name: str) -> Path | None:
    """DuckDB extensions come as PyPI wheels here (``duckdb-extension-<name>``): INSTALL
    would try to download them."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    found = sorted(root.rglob(f"{name}.duckdb_extension"))
    return found[0] if found else None


class Database:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise StorageError(f"cannot open the database {self.path}: {exc}; is another "
                               "HomePilot server using it?") from exc
        self._write_lock = threading.Lock()
        self.fts = self._load("fts")
        self.vss = self._load("vss")
        if self.vss:  # HNSW indexes (knowledge chunks) kept in this file
            self._connection.execute("SET GLOBAL hnsw_enable_experimental_persistence = true")
        self.migrate()

    def _load(self, name: str) -> bool:
        path = extension_path(name)
        if path is None:
            log.warning("DuckDB extension %s is not installed (pip install "
                        "duckdb-extension-%s)", name, name)
            return False
        self._connection.execute(f"LOAD '{path}'")
        return True

    def migrate(self) -> list[int]:
        """Apply the numbered migrations not applied yet, each in its own transaction."""
        with self._write_lock:
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)")
            done = {row[0] for row in
                    self._connection.execute("SELECT version FROM schema_migrations").fetchall()}
            applied = []
            for script in sorted(MIGRATIONS.glob("*.sql")):
                version = int(script.name.split("_", 1)[0])
                if version in done:
                    continue
                self._connection.execute("BEGIN TRANSACTION")
                try:
                    self._connection.execute(script.read_text())
                    self._connection.execute("INSERT INTO schema_migrations (version, name) "
                                             "VALUES (?, ?)", [version, script.stem])
                    self._connection.execute("COMMIT")
                except duckdb.Error as exc:
                    self._connection.execute("ROLLBACK")
                    raise StorageError(f"migration {script.name} failed: {exc}") from exc
                applied.append(version)
            return applied

    def read(self, sql: str, params: list[Any] | dict[str, Any] | None = None
             ) -> list[tuple[Any, ...]]:
        cursor = self._connection.cursor()  # one cursor per call: safe across threads
        try:
            return cursor.execute(sql, params or []).fetchall()
        finally:
            cursor.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own (for reads spanning several queries); the caller
        closes it."""
        return self._connection.cursor()

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A transaction holding the one writer lock; committed when the block ends."""
        with self._write_lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN TRANSACTION")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()

    def close(self) -> None:
        with self._write_lock:
            self._connection.close()
