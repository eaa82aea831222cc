"""The editor in a real browser: ComfyUI's frontend over HomePilot, scenario by scenario.

Each test leaves a screenshot in test-results/editor/ (see conftest)."""

from __future__ import annotations


def test_the_editor_loads_clean_and_its_search_finds_our_nodes(editor):
    editor.open()
    editor.settle()
    found = editor.search_results("llm.Chat")
    assert any("Chat (Local Model)" in text for text in found), found
    found = editor.search_results("image.TextToImage")
    assert any("Text to Image" in text for text in found), found
    editor.page.wait_for_timeout(500)
    assert editor.failed == []
    assert editor.errors == []
    assert editor.off_host() == []


def test_greeting_runs_from_the_homepilot_folder_with_a_changed_input(editor):
    editor.open()
    editor.settle()
    editor.open_workflow("HomePilot", "greeting")
    editor.set_input("name", "Ada")
    editor.watch_execution()
    known = len(editor.jobs("completed,failed,cancelled"))
    editor.run()
    job = editor.wait_job(known)
    assert job["status"] == "completed"
    shown = editor.wait_for("""() => Object.fromEntries(app.graph.nodes
        .filter(n => n.type === 'graph.Output')
        .map(n => [n.widgets.find(w => w.name === 'name').value,
                   n.widgets.find(w => w.name === 'preview_text')?.value]))""")
    assert shown["message"] == "Hello Ada! It is sunny at the lake."
    assert shown["shouted"] == "HELLO ADA! IT IS SUNNY AT THE LAKE." and shown["length"] == "35"
    # ... and on the page: primitive.Show draws it on the canvas' DOM layer.
    assert editor.wait_for("(t) => [...document.querySelectorAll('[data-testid=dom-widgets] *')]"
                           ".some(e => (e.value || e.textContent || '').includes(t))",
                           "Hello Ada! It is sunny at the lake.", timeout=10)
    # The page was told of every node that ran as it started (the highlight's source).
    ran = {str(i) for i in editor.js("() => app.graph.nodes.filter(n => n.type !== "
                                     "'graph.Input').map(n => n.id)")}
    assert ran <= set(editor.seen()["told"])
    rows = editor.queue_panel()
    assert any("Job #" in row for row in rows)
    assert editor.failed == [] and editor.errors == []
