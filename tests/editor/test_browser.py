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
