"""The editor in a real browser: ComfyUI's frontend over HomePilot, scenario by scenario.

Each test leaves a screenshot in test-results/editor/ (see conftest)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from engine.settings import get_settings
from tests.editor.page import STORES

REPO = Path(__file__).resolve().parents[2]


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


IMAGINE = {"prompt": "a red fox in the snow", "seed": "1234", "steps": "3", "width": "64",
           "height": "64", "preview": "true"}


def homepilot_run(graph: Path, settings: dict[str, str] | None = None) -> dict:
    """The outputs of `homepilot run GRAPH --set ... --json` on the local executor."""
    command = [str(Path(sys.executable).parent / "homepilot"), "run", str(graph),
               "--executor", "local", "--json"]
    for name, value in (settings or {}).items():
        command += ["--set", f"{name}={value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["outputs"]


def cli_picture(settings: dict[str, str]) -> Image.Image:
    """The picture `homepilot run graphs/imagine.yaml` makes with these inputs."""
    outputs = homepilot_run(REPO / "graphs" / "imagine.yaml", settings)
    return Image.open(get_settings().home / "files" / outputs["files"][0]).convert("RGB")


def test_imagine_runs_with_step_progress_and_the_preview_matches_the_cli(editor, test_pack,
                                                                      request):
    editor.open()
    editor.settle()
    editor.open_workflow("HomePilot", "imagine")
    for name, value in IMAGINE.items():
        editor.set_input(name, value)
    generate = editor.node_ids("image.TextToImage")[0]
    save = editor.node_ids("image.Save")[0]
    editor.watch_execution()
    known = len(editor.jobs("completed,failed,cancelled"))
    editor.run()
    job = editor.wait_job(known, timeout=300)
    assert job["status"] == "completed", job
    seen = editor.seen()
    steps = [value for node, value, total, state in seen["progress"]
             if node == str(generate) and total == 3 and state == "running"]
    # Step by step up to the last. A model host hands steps on in lists at most every 50
    # ms (on Ray), so two quick steps may arrive as one: 1 then 3 is a real progression.
    assert steps == sorted(steps) and steps[-1] == 3 and min(steps) < 3, seen["progress"]
    assert str(generate) in seen["running"]  # highlighted on the canvas while it ran
    assert seen["previews"] >= 1  # latent previews arrived as binary frames
    assert job["preview_output"]["nodeId"] == str(save)
    # The node's preview picture came through /editor/api/view.
    loaded = editor.wait_for("""(name) => app.nodeOutputs && Object.values(app.nodeOutputs)
        .some(o => (o.images || []).some(i => i.filename === name))""",
                             job["preview_output"]["filename"], timeout=10)
    assert loaded
    editor.page.wait_for_timeout(500)
    fetched = [v for v in editor.views if job["preview_output"]["filename"] in v[0]]
    assert fetched and fetched[0][1] == 200 and fetched[0][2].startswith("image/png")
    shown = editor.js("(url) => fetch(url).then(r => r.arrayBuffer())"
                      ".then(b => Array.from(new Uint8Array(b)))", fetched[0][0])
    picture = Image.open(io.BytesIO(bytes(shown))).convert("RGB")
    assert picture.size == (64, 64)
    expected = cli_picture({k: v for k, v in IMAGINE.items() if k != "preview"})
    if request.node.callspec.params["editor_url"] == "local":
        # The same executor as the CLI's: the same kernels, so the same pixels.
        assert list(picture.getdata()) == list(expected.getdata())
    else:
        # Across executors the kernels may differ (thread counts): the seed promise's bound.
        diffs = [abs(a - b) for p, q in zip(picture.getdata(), expected.getdata(), strict=True)
                 for a, b in zip(p, q, strict=True)]
        assert sum(diffs) / len(diffs) < 1 and max(diffs) < 8
    assert editor.failed == [] and editor.errors == []


def test_a_graph_built_in_the_editor_saves_as_yaml_that_homepilot_run_runs_alike(editor):
    editor.open_blank()
    # Far enough apart that each double-click lands on empty canvas.
    concat = editor.add_node("text.Concat", (400, 150))
    case = editor.add_node("text.Case", (400, 550))
    output = editor.add_node("graph.Output", (950, 350))
    editor.type_into(concat, "a", "Hello")
    editor.type_into(concat, "b", "built world")
    editor.js("(id) => { app.graph.getNodeById(id).widgets"
              ".find(w => w.name === 'separator').value = ', ' }", concat)
    editor.connect(concat, "text", case, "text")
    editor.connect(case, "text", output, "value")
    assert editor.linked(case, "text") and editor.linked(output, "value")
    # Save (Ctrl+S asks for a name), then run it here.
    editor.page.locator("#graph-canvas").click(position={"x": 1200, "y": 150}, force=True)
    editor.page.keyboard.press("Control+s")
    name_box = editor.page.get_by_role("dialog").get_by_role("textbox")
    name_box.fill("built")
    name_box.press("Enter")
    saved = get_settings().user_graphs_dir / "built.yaml"
    editor.wait_for("() => app.extensionManager.workflow.activeWorkflow?.filename === 'built'")
    known = len(editor.jobs("completed,failed,cancelled"))
    editor.run()
    job = editor.wait_job(known)
    assert job["status"] == "completed", job
    shown = editor.wait_for("(id) => app.graph.getNodeById(id).widgets"
                            ".find(w => w.name === 'preview_text')?.value", output)
    assert shown == "hello, built world"  # text.Case's default mode is lower
    assert saved.is_file()
    assert homepilot_run(saved) == {"output": "hello, built world"}
    listed = editor.js("() => fetch('/graphs').then(r => r.json())")
    assert "user/built" in [g["name"] for g in listed]
    assert editor.failed == [] and editor.errors == []


def test_a_missing_input_marks_its_node_and_a_wrong_type_will_not_link(editor):
    editor.open_blank()
    case = editor.add_node("text.Case", (400, 250))
    save = editor.add_node("image.Save", (950, 250))
    every = "completed,failed,cancelled,in_progress"
    known = len(editor.jobs(every))
    editor.connect(case, "text", save, "image")  # STRING into IMAGE
    assert not editor.linked(save, "image")
    assert editor.js("() => app.graph.links.size ?? Object.keys(app.graph.links).length") == 0
    editor.run()
    errors = editor.wait_for(f"() => {{ const e = {STORES}.get('executionError').lastNodeErrors;"
                             " return e && Object.keys(e).length ? e : null }")
    assert list(errors) == [str(save)]
    problem = errors[str(save)]["errors"][0]
    assert problem["extra_info"]["input_name"] == "image"
    assert len(editor.jobs(every)) == known  # nothing ran
    # The editor names the node in its error panel.
    editor.page.get_by_text("Save Image").first.wait_for()
    # The refused prompt is the one expected 400; nothing else failed.
    assert [f for f in editor.failed if "/api/prompt" not in f] == []
