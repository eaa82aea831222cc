"""Driving the editor page like a user, and reading what it shows.

The page runs under the editor's Content-Security-Policy (no eval), so reads go through
``page.evaluate`` (DevTools, not page script) and through the frontend's own stores.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

# The frontend's Pinia stores, reached from its Vue app.
STORES = "document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia._s"


class EditorPage:
    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(f"{m.text} at {m.location.get('url')}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} {r.failure}"))
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        page.on("request", lambda r: self.requests.append(r.url))

    # -- reading --------------------------------------------------------------------------

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def wait_for(self, expression: str, arg: Any = None, timeout: float = 60) -> Any:
        """Poll a page expression until it is truthy (wait_for_function would eval)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never made {expression[:120]!r} true")
            self.page.wait_for_timeout(100)

    def off_host(self) -> list[str]:
        own = urlsplit(self.base).netloc
        return [u for u in self.requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                and urlsplit(u).netloc != own]

    # -- opening -----------------------------------------------------------------------------

    def open(self) -> float:
        """Load /editor/ until the canvas is drawn and the node library is in; seconds."""
        started = time.monotonic()
        self.page.goto(f"{self.base}/editor/")
        self.wait_for("() => !!(window.app && window.app.graph && window.app.canvas && "
                      f"{STORES}.get('nodeDef') && "
                      f"Object.keys({STORES}.get('nodeDef').nodeDefsByName).length > 0)")
        return time.monotonic() - started

    def settle(self) -> None:
        """Let boot-time work (jobs, settings writes) finish; close what opened itself."""
        self.page.wait_for_timeout(1500)
        self.page.keyboard.press("Escape")

    def open_workflow(self, *path: str) -> None:
        """Open a workflow from the Workflows sidebar: folders, then the file."""
        self.page.get_by_role("button", name="Workflows (w)").click()
        for part in path:
            self.page.get_by_role("treeitem", name=part, exact=True).first.click()
        self.wait_for("(name) => app.extensionManager.workflow.activeWorkflow?.filename === name",
                      path[-1])
        self.page.get_by_role("button", name="Workflows (w)").click()

    # -- graph -----------------------------------------------------------------------------

    def node_ids(self, kind: str) -> list[int]:
        return self.js("(kind) => app.graph.nodes.filter(n => n.type === kind).map(n => n.id)",
                       kind)

    def graph_input(self, name: str) -> Any:
        """The value box of the graph.Input node named ``name``, as a page locator."""
        found = self.js("""(name) => {
            const node = app.graph.nodes.find(n => n.type === 'graph.Input' &&
                n.widgets?.find(w => w.name === 'name')?.value === name);
            const widget = node?.widgets?.find(w => w.name === 'value');
            const box = widget?.element ?? widget?.inputEl;
            if (!box) return false;
            box.setAttribute('data-hp-input', name);
            return true;
        }""", name)
        assert found, f"no graph.Input named {name!r} with a text box"
        return self.page.locator(f"[data-hp-input='{name}']")

    def set_input(self, name: str, value: str) -> None:
        box = self.graph_input(name)
        box.scroll_into_view_if_needed()
        box.fill(value)
        box.press("Tab")

    def screen_point(self, x: float, y: float) -> tuple[float, float]:
        """Canvas (graph) coordinates to page coordinates."""
        point = self.js("""([x, y]) => {
            const p = app.canvas.ds.convertOffsetToCanvas([x, y]);
            const r = app.canvas.canvas.getBoundingClientRect();
            return [p[0] + r.left, p[1] + r.top];
        }""", [x, y])
        return point[0], point[1]

    def slot_point(self, node_id: int, slot: int, output: bool) -> tuple[float, float]:
        x, y = self.js("""([id, slot, output]) => {
            const node = app.graph.getNodeById(id);
            return node.getConnectionPos(!output, slot);
        }""", [node_id, slot, output])
        return self.screen_point(x, y)

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        mouse = self.page.mouse
        mouse.move(*start)
        mouse.down()
        mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=5)
        mouse.move(*end, steps=5)
        mouse.up()

    def add_node(self, query: str, at: tuple[float, float]) -> int:
        """Double-click empty canvas, search, take the first match; the new node's id."""
        before = set(self.js("() => app.graph.nodes.map(n => n.id)"))
        self.page.locator("#graph-canvas").dblclick(position={"x": at[0], "y": at[1]},
                                                    force=True)
        search = self.page.get_by_role("combobox", name="Add a node...")
        search.fill(query)
        self.page.locator("#results-list [role=option]").first.wait_for()
        search.press("Enter")
        added = self.wait_for("(before) => app.graph.nodes.map(n => n.id)"
                              ".filter(id => !before.includes(id))", sorted(before))
        return added[0]

    def search_results(self, query: str) -> list[str]:
        self.page.locator("#graph-canvas").dblclick(position={"x": 700, "y": 860}, force=True)
        search = self.page.get_by_role("combobox", name="Add a node...")
        search.fill(query)
        self.page.locator("#results-list [role=option]").first.wait_for()
        texts = self.page.locator("#results-list [role=option]").all_inner_texts()
        search.press("Escape")
        search.wait_for(state="detached")
        return texts

    # -- running -----------------------------------------------------------------------------

    def watch_execution(self) -> None:
        """Record what the page learns of a run as it happens: every node the API client
        is told is running (``progress_state`` drives the highlight), every node the
        execution store marks running (the store coalesces messages per frame, so very
        short nodes may never show there), and every progress value."""
        self.js(f"""() => {{
            const execution = {STORES}.get('execution');
            const hp = window.__hp = {{told: [], running: [], progress: []}};
            window.comfyAPI.api.api.addEventListener('progress_state', (e) => {{
                for (const [id, s] of Object.entries(e.detail.nodes))
                    if (s.state === 'running') hp.told.push(String(id));
            }});
            execution.$subscribe(() => {{
                for (const id of execution.executingNodeIds) hp.running.push(String(id));
                for (const [id, s] of Object.entries(execution.nodeProgressStates || {{}}))
                    hp.progress.push([String(id), s.value, s.max, s.state]);
            }}, {{flush: 'sync'}});
        }}""")

    def seen(self) -> dict[str, Any]:
        return self.js("() => window.__hp")

    def run(self) -> None:
        self.page.get_by_role("button", name="Run", exact=True).first.click()

    def queue_panel(self) -> list[str]:
        """The completed jobs the queue panel lists, as its rows read."""
        self.page.get_by_role("button", name="active").first.click()
        self.page.get_by_role("button", name="Completed", exact=True).click()
        rows = self.page.get_by_text("Job #")
        rows.first.wait_for()
        texts = rows.all_inner_texts()
        self.page.keyboard.press("Escape")
        return texts

    def jobs(self, status: str) -> list[dict[str, Any]]:
        answer = self.js("(s) => fetch('api/jobs?status=' + s).then(r => r.json())", status)
        return answer["jobs"]

    def wait_job(self, known: int = 0, timeout: float = 120) -> dict[str, Any]:
        """The first job past the ``known`` ones, once it has ended."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.jobs("completed,failed,cancelled")
            if len(done) > known:
                return done[0]
            if time.monotonic() > deadline:
                raise TimeoutError(json.dumps(self.jobs("in_progress")))
            self.page.wait_for_timeout(200)
