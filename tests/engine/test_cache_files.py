"""A cached result that names a stored file is served only while the file exists: once
it is deleted (a conversation removed, an incognito picture expired) the nodes that made
it, and everything downstream of them, run again."""

from __future__ import annotations

from engine.files import FileStore
from engine.settings import get_settings


def graph(make_graph):
    return make_graph({
        "solid": {"type": "image.Solid", "inputs": {"width": 8, "height": 4, "color": "#336699"}},
        "save": {"type": "image.Save", "inputs": {"image": "${solid.image}"}},
        "label": {"type": "text.Concat", "inputs": {"a": "stored as", "b": "${save.file_id}",
                                                    "separator": " "}},
    }, outputs={"file": "${save.file_id}", "label": "${label.text}"})


def test_a_deleted_file_is_made_again_rather_than_served_from_the_cache(executor, make_graph):
    store = FileStore(get_settings().home / "files")
    first = executor.run(graph(make_graph), timeout=120)
    assert first.status == "success", first.error
    again = executor.run(graph(make_graph), timeout=120)
    assert again.outputs == first.outputs and set(again.cached) >= {"label"}
    assert again.executed == []
    store.path(first.outputs["file"]).unlink()
    redone = executor.run(graph(make_graph), timeout=120)
    assert redone.status == "success", redone.error
    assert {"save", "label"} <= set(redone.executed)
    made = redone.outputs["file"]
    assert made != first.outputs["file"] and store.exists(made)
    assert redone.outputs["label"] == f"stored as {made}"
