"""The runs journal: each run started over HTTP gets a row when it starts and its end
when it ends. Rows still 'running' when the server starts again belong to runs the old
process was killed under (SIGKILL, power loss): they are marked failed, so a client
asking for such a run learns what happened rather than getting a 404."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel

from engine.errors import NodeError
from server.storage.database import Database

log = logging.getLogger("homepilot.server")

INTERRUPTED = NodeError(node_id="<server>", node_type="server", error_type="ServerStopped",
                        message="the server stopped while this run was going (killed or "
                                "crashed); nothing it had not finished was kept: run it again")


class JournalEntry(BaseModel):
    run_id: str
    graph: str
    status: str
    submitted: float
    finished: float | None = None
    error: NodeError | None = None


class RunJournal:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Ends are written from the run's terminal event, which its other listeners (a
        # waiting request, a WebSocket) are waiting behind: one writer thread, in order.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="homepilot-journal")

    def started(self, run_id: str, graph: str) -> None:
        with self.db.write() as cursor:
            cursor.execute("INSERT OR REPLACE INTO runs (run_id, graph, status, submitted) "
                           "VALUES (?, ?, 'running', ?)", [run_id, graph, time.time()])

    def ended(self, run_id: str, status: str, error: NodeError | None) -> None:
        """Record the end (soon, on the writer thread)."""
        self._writer.submit(self._write_end, run_id, status, error)

    def flush(self) -> None:
        """Wait for the ends recorded so far to be written."""
        self._writer.submit(lambda: None).result()

    def _write_end(self, run_id: str, status: str, error: NodeError | None) -> None:
        try:
            with self.db.write() as cursor:
                cursor.execute("UPDATE runs SET status = ?, finished = ?, error = ? "
                               "WHERE run_id = ?",
                               [status, time.time(),
                                error.model_dump_json() if error else None, run_id])
        except Exception:  # the database is closing: the row stays 'running', and the
            # next start reports the run as interrupted, which it was
            log.exception("could not record the end of run %s", run_id)

    def recover(self, keep_days: float = 30) -> int:
        """Mark the runs a previous process left 'running' as failed (and forget runs
        older than ``keep_days``); returns how many were marked."""
        with self.db.write() as cursor:
            cursor.execute("DELETE FROM runs WHERE submitted < ?",
                           [time.time() - keep_days * 86400])
            (count,) = cursor.execute("SELECT count(*) FROM runs WHERE status = 'running'"
                                      ).fetchone()
            cursor.execute("UPDATE runs SET status = 'failed', finished = ?, error = ? "
                           "WHERE status = 'running'",
                           [time.time(), INTERRUPTED.model_dump_json()])
        return int(count)

    def get(self, run_id: str) -> JournalEntry | None:
        rows = self.db.read("SELECT run_id, graph, status, submitted, finished, error "
                            "FROM runs WHERE run_id = ?", [run_id])
        if not rows:
            return None
        run_id, graph, status, submitted, finished, error = rows[0]
        parsed: Any = json.loads(error) if error else None
        return JournalEntry(run_id=run_id, graph=graph, status=status, submitted=submitted,
                            finished=finished,
                            error=NodeError.model_validate(parsed) if parsed else None)
