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
        self.views: list[tuple[str, int, str]] = []
        page.on("response", lambda r: self.views.append(
            (r.url, r.status, r.headers.get("content-type", "")))
            if "/editor/api/view?" in r.url else None)

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
        dialogs = self.page.get_by_role("dialog")
        for _ in range(20):  # a fresh profile opens the template browser by itself
            if dialogs.count() == 0:
                break
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)

    def open_blank(self) -> None:
        """The editor with a new, empty workflow in front."""
        self.open()
        self.settle()
        self.page.get_by_role("button", name="Create a new blank workflow").click()
        self.wait_for("() => app.graph.nodes.length === 0")

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

    def widget_box(self, node_id: int, name: str) -> Any:
        """The text box of a node's multiline widget, as a page locator."""
        found = self.js("""([id, name]) => {
            const widget = app.graph.getNodeById(id)?.widgets?.find(w => w.name === name);
            const box = widget?.element ?? widget?.inputEl;
            if (!box) return false;
            box.setAttribute('data-hp-widget', id + '-' + name);
            return true;
        }""", [node_id, name])
        assert found, f"node {node_id} has no text box {name!r}"
        return self.page.locator(f"[data-hp-widget='{node_id}-{name}']")

    def type_into(self, node_id: int, name: str, value: str) -> None:
        box = self.widget_box(node_id, name)
        box.fill(value)
        box.press("Tab")

    def connect(self, source: int, output: str, target: int, input_name: str) -> None:
        """Drag from an output dot to an input dot, as a user links two nodes."""
        out_slot, in_slot = self.js("""([s, o, t, i]) => [
            app.graph.getNodeById(s).findOutputSlot(o),
            app.graph.getNodeById(t).findInputSlot(i)]""", [source, output, target, input_name])
        assert out_slot >= 0 and in_slot >= 0, (output, input_name)
        self.drag(self.slot_point(source, out_slot, True),
                  self.slot_point(target, in_slot, False))

    def linked(self, target: int, input_name: str) -> bool:
        return self.js("""([t, i]) => {
            const node = app.graph.getNodeById(t);
            return node.inputs[node.findInputSlot(i)].link != null;
        }""", [target, input_name])

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
        """Double-click empty canvas at ``at``, search, take the first match and drop the
        node there (it follows the pointer until a click, as for a user); its id."""
        before = set(self.js("() => app.graph.nodes.map(n => n.id)"))
        search = self.open_search(at)
        search.fill(query)
        self.page.locator("#results-list [role=option]").first.wait_for()
        search.press("Enter")
        search.wait_for(state="detached")
        added = self.wait_for("(before) => app.graph.nodes.map(n => n.id)"
                              ".filter(id => !before.includes(id))", sorted(before))
        self.page.mouse.move(at[0] + 5, at[1] + 5, steps=3)
        self.page.mouse.click(*at)
        self.page.wait_for_timeout(300)
        return added[0]

    def open_search(self, at: tuple[float, float]) -> Any:
        """Double-click the canvas at ``at`` (empty there) to open the node search box."""
        search = self.page.get_by_role("combobox", name="Add a node...")
        for _ in range(3):
            self.page.mouse.click(*at)  # ends what the pointer last did, clears selection
            self.page.wait_for_timeout(600)
            self.page.mouse.dblclick(*at)
            try:
                search.wait_for(timeout=5000)
                break
            except Exception:  # noqa: BLE001 (Playwright's timeout: a dialog was closing)
                continue
        return search

    def search_results(self, query: str) -> list[str]:
        search = self.open_search((700, 860))
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
            const hp = window.__hp = {{told: [], running: [], progress: [], previews: 0}};
            const api = window.comfyAPI.api.api;
            api.addEventListener('progress_state', (e) => {{
                for (const [id, s] of Object.entries(e.detail.nodes)) {{
                    if (s.state === 'running') hp.told.push(String(id));
                    hp.progress.push([String(id), s.value, s.max, s.state]);
                }}
            }});
            api.addEventListener('b_preview', () => {{ hp.previews += 1; }});
            execution.$subscribe(() => {{
                for (const id of execution.executingNodeIds) hp.running.push(String(id));
            }}, {{flush: 'sync'}});
        }}""")

    def seen(self) -> dict[str, Any]:
        return self.js("() => window.__hp")

    def run(self) -> None:
        self.page.get_by_role("button", name="Run", exact=True).first.click()

    def queue_panel(self) -> list[str]:
        """The completed jobs the queue panel lists, as its rows read."""
        completed = self.page.get_by_role("button", name="Completed", exact=True)
        for _ in range(3):  # the toggle may meet a toast or a closing animation
            self.page.get_by_role("button", name="active").first.click()
            try:
                completed.wait_for(timeout=5000)
                break
            except Exception:  # noqa: BLE001 (Playwright's timeout: try the toggle again)
                continue
        completed.click()
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
