"""Browser tests of the visual editor: Debian's chromium driven by Playwright against the
real app served on 127.0.0.1 (uvicorn in a thread, the session's executors)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.settings import get_settings
from server.app import create_app
from tests.conftest import session_executor
from tests.editor.page import EditorPage
from tests.serving import serving

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# Screenshots of every scenario, next to the test report.
SHOTS = Path(__file__).resolve().parents[2] / "test-results" / "editor"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module: Playwright's sync API keeps an event loop in this thread
    while it is open, and later tests call asyncio.run()."""
    if not Path(CHROMIUM).exists():
        # `make test` installs it; failing here says so rather than skipping quietly.
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        opened = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield opened
        opened.close()


@pytest.fixture(scope="module", params=["local", "ray"])
def editor_url(request: pytest.FixtureRequest, registry: Any,
               _executors: dict[str, Any]) -> Iterator[str]:
    """The app at a real URL on one executor; its home is the test session's, so nodes,
    uploads, the file store and ``homepilot run`` all see the same folders."""
    executor = session_executor(request, registry, _executors, request.param)
    settings = get_settings()
    # Each module starts without the previous one's user files and graphs...
    for folder in (settings.user_dir, settings.user_graphs_dir):
        shutil.rmtree(folder, ignore_errors=True)
    app = create_app(settings, registry, executor)
    with app.state.homepilot.db.write() as cursor:  # nor the previous editor settings
        cursor.execute("DELETE FROM editor_settings")
    with serving(app) as url:
        yield url


@pytest.fixture
def editor(browser: Any, editor_url: str, request: pytest.FixtureRequest,
           _executors: dict[str, Any]) -> Iterator[EditorPage]:
    """A fresh browser profile on /editor/, its console and network watched; the
    executors' caches empty, so every node of a scenario runs."""
    for executor in _executors.values():
        executor.clear_cache()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = EditorPage(context.new_page(), editor_url)
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("[", "-").replace("]", "")
    try:
        page.page.screenshot(path=str(SHOTS / f"{name}.png"))
    finally:
        context.close()
