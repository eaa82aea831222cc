"""Work the server does on its own while it runs: sweeping expired files."""

from __future__ import annotations

import asyncio
import logging

from server.state import AppState

log = logging.getLogger("homepilot.server")
SWEEP_EVERY = 300.0  # seconds between sweeps of expiring files


async def sweep_forever(state: AppState, every: float = SWEEP_EVERY) -> None:
    """Delete expired files now and every ``every`` seconds until cancelled."""
    while True:
        try:
            removed = await asyncio.to_thread(state.expiring.sweep)
            if removed:
                log.info("swept %d expired files", removed)
        except Exception:  # a failed sweep is retried next time; the server carries on
            log.exception("sweeping expired files failed")
        await asyncio.sleep(every)
