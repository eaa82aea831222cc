"""The visual editor's costs, against baselines measured in the same run.

- Editor ready: a fresh browser profile opens /editor/ until the canvas is drawn and the
  node library is loaded, then opens it again with the build in its cache (median of 5);
  GET /editor/api/object_info's time and size.
- Run latency: from the Run button's click to the first ``progress_state`` message the
  page receives, beside a direct ``POST /prompt`` of the same prompt and the first
  ``progress_state`` on a WebSocket (median of 5 each; a new name each run, so nothing is
  served from the cache).

    python bench/editor.py [--executor ray|local]

It starts ``homepilot serve`` on a free port with a fresh home and Debian's chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.loader import load_graph  # noqa: E402
from engine.workflow import graph_to_workflow, workflow_to_prompt  # noqa: E402
from nodes import build_registry  # noqa: E402
from tests.editor.conftest import ARGS, CHROMIUM  # noqa: E402
from tests.editor.page import EditorPage  # noqa: E402
from tests.serving import homepilot_serve  # noqa: E402

RUNS = 5


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def object_info(base: str) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(RUNS):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/editor/api/object_info") as answer:
            size = len(answer.read())
        times.append(time.perf_counter() - started)
    return times, size


def greeting_prompt(name: str) -> dict:
    registry = build_registry()
    workflow = graph_to_workflow(load_graph(ROOT / "graphs/examples/greeting.yaml"), registry)
    prompt = workflow_to_prompt(workflow, registry)
    for node in prompt.values():
        if node["class_type"] == "graph.Input" and node["inputs"].get("name") == "name":
            node["inputs"]["value"] = name
    return prompt


async def direct_run(base: str, prompt: dict) -> float:
    """Seconds from POST /prompt to the first progress_state on the client's socket."""
    import websockets

    client = uuid.uuid4().hex
    host = base.removeprefix("http://")
    async with websockets.connect(f"ws://{host}/editor/ws?clientId={client}") as socket:
        await socket.recv()  # status
        body = json.dumps({"prompt": prompt, "client_id": client}).encode()
        request = urllib.request.Request(f"{base}/editor/api/prompt", data=body,
                                         headers={"content-type": "application/json"})
        started = time.perf_counter()
        await asyncio.to_thread(urllib.request.urlopen, request)
        while True:
            message = await socket.recv()
            if isinstance(message, str) and json.loads(message)["type"] == "progress_state":
                return time.perf_counter() - started


def editor_runs(browser: object, base: str) -> tuple[list[float], list[float], list[float]]:
    """(ready seconds on a fresh profile, ready seconds on a second visit, run-button-to-
    progress_state seconds), each profile new."""
    ready, again, runs = [], [], []
    for index in range(RUNS):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        editor = EditorPage(context.new_page(), base)
        ready.append(editor.open())
        editor.settle()
        again.append(editor.open())  # the browser's cache now holds the build's chunks
        editor.settle()
        editor.open_workflow("HomePilot", "greeting")
        editor.set_input("name", f"editor {index}")
        editor.js("""() => {
            window.__bench = {};
            const button = [...document.querySelectorAll('button')]
                .find(b => b.textContent.trim() === 'Run');
            button.addEventListener('pointerdown', () => {
                window.__bench.clicked = performance.now(); }, {capture: true});
            window.comfyAPI.api.api.addEventListener('progress_state', () => {
                window.__bench.first ??= performance.now(); });
        }""")
        editor.run()
        delta = editor.wait_for("() => window.__bench.first && "
                                "window.__bench.first - window.__bench.clicked")
        runs.append(delta / 1000)
        context.close()
    return ready, again, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executor", choices=["ray", "local"], default="ray")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home, \
            homepilot_serve(home, "--executor", args.executor) as (base, _):
        info_times, info_size = object_info(base)
        direct = [asyncio.run(direct_run(base, greeting_prompt(f"direct {i}")))
                  for i in range(RUNS)]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            ready, again, clicked = editor_runs(browser, base)
            browser.close()
    nodes = len(build_registry().specs())
    print(f"executor: {args.executor}; median of {RUNS}")
    print(f"editor ready (canvas drawn, node library loaded), new profile: {median_ms(ready)} "
          f"(target < 2000 ms; runs: {', '.join(f'{t * 1000:.0f}' for t in ready)})")
    print(f"editor ready, second visit (cached build): {median_ms(again)} "
          f"(runs: {', '.join(f'{t * 1000:.0f}' for t in again)})")
    print(f"GET /editor/api/object_info, {nodes} node types: {median_ms(info_times)}, "
          f"{info_size / 1024:.0f} KiB (target < 50 ms)")
    print(f"direct POST /prompt -> first progress_state: {median_ms(direct)}")
    print(f"Run button -> first progress_state: {median_ms(clicked)} "
          f"({(statistics.median(clicked) - statistics.median(direct)) * 1000:+.0f} ms over "
          "direct; target < +50 ms)")


if __name__ == "__main__":
    main()
