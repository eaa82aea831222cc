"""Serving an ASGI app for real on 127.0.0.1 inside a test (uvicorn in a thread)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[str]:
    """Yield the base URL while uvicorn serves ``app`` (on ``port``, or a free one); stop
    it on the way out."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def homepilot_serve(home: Any, *args: str, env: dict[str, str] | None = None,
                    timeout: float = 180) -> Iterator[tuple[str, Any]]:
    """A real ``homepilot serve`` process on a free port: yields (base URL, process).
    Stopped by its process group id on the way out (SIGTERM, then SIGKILL)."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    port = free_port()
    command = [str(Path(sys.executable).parent / "homepilot"), "serve", "--port", str(port),
               *args]
    process = subprocess.Popen(command, env={**os.environ, "HOMEPILOT_HOME": str(home),
                                             "RAY_ADDRESS": "", **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise RuntimeError(f"homepilot serve did not come up:\n{output}") from None
                time.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (Ray's head processes, its workers...), from /proc."""
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    # "pid (command) state ppid ...": the command may hold spaces.
                    parent = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def living(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (an exited process nobody reaped is a zombie: gone)."""
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            continue
    return alive
