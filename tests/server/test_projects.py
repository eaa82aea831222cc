"""Projects: CRUD in DuckDB, shallow merges, examples, and deletion of everything owned."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.parametrize("executor", ["local"], indirect=True)


def _rows(client, sql: str, params: list | None = None) -> list[tuple]:
    return client.app.state.homepilot.db.read(sql, params or [])


def test_create_list_get_update_delete(client):
    created = client.post("/projects", json={
        "name": "Taxes", "description": "2026 paperwork", "instructions": "Be brief.",
        "agentic": {"goal": "file on time", "capabilities": ["document_qa"]}})
    assert created.status_code == 201
    project = created.json()["project"]
    assert project["name"] == "Taxes" and project["project_type"] == "chat"
    assert project["files"] == [] and project["is_public"] is False
    assert project["agentic"] == {"goal": "file on time", "capabilities": ["document_qa"]}
    assert abs(project["created_at"] - time.time()) < 60
    stored = _rows(client, "SELECT name, instructions, project_type FROM projects WHERE id = ?",
                   [project["id"]])
    assert stored == [("Taxes", "Be brief.", "chat")]

    time.sleep(0.01)
    second = client.post("/projects", json={"name": "Garden"}).json()["project"]
    listed = client.get("/projects").json()["projects"]
    assert [p["name"] for p in listed] == ["Garden", "Taxes"]  # newest update first

    got = client.get(f"/projects/{project['id']}").json()["project"]
    assert got["document_count"] == 0 and got["instructions"] == "Be brief."

    # The four objects merge key by key; plain fields replace; unknown keys are ignored.
    updated = client.put(f"/projects/{project['id']}", json={
        "description": "2026 and 2027", "agentic": {"goal": "file early"},
        "persona_agent": {"label": "Ada"}, "id": "hijack", "created_at": 0}).json()["project"]
    assert updated["agentic"] == {"goal": "file early", "capabilities": ["document_qa"]}
    assert updated["persona_agent"] == {"label": "Ada"} and updated["id"] == project["id"]
    assert updated["description"] == "2026 and 2027" and updated["name"] == "Taxes"
    assert updated["created_at"] == project["created_at"]
    assert updated["updated_at"] > project["updated_at"]
    assert [p["name"] for p in client.get("/projects").json()["projects"]] == ["Taxes",
                                                                               "Garden"]

    conversations = client.app.state.homepilot.conversations
    conversations.add("c-taxes", [("user", "When is it due?", None)], project["id"])
    conversations.add("c-garden", [("user", "Tomatoes?", None)], second["id"])
    conversations.add("c-plain", [("user", "Hello", None)], None)
    deleted = client.delete(f"/projects/{project['id']}")
    assert deleted.json() == {"ok": True, "message": "Project deleted successfully"}
    assert _rows(client, "SELECT count(*) FROM projects") == [(1,)]
    # The project's chats went with it; other chats stay.
    assert _rows(client, "SELECT conversation_id FROM messages ORDER BY id") == [
        ("c-garden",), ("c-plain",)]
    assert client.get(f"/projects/{project['id']}").status_code == 404
    assert client.delete(f"/projects/{project['id']}").json()["code"] == "not_found"
    assert client.get(f"/projects/{second['id']}").status_code == 200


def test_bad_input_is_a_4xx_and_changes_nothing(client):
    project = client.post("/projects", json={"name": "Kept"}).json()["project"]
    before = _rows(client, "SELECT * FROM projects")
    for body in ({}, {"name": ""}, {"name": 5}, {"name": "x", "is_public": "maybe"},
                 {"name": "x", "agentic": [1, 2]}, {"name": "x" * 201}):
        answer = client.post("/projects", json=body)
        assert answer.status_code == 422, body
        assert answer.json()["code"] == "invalid_request"
    for body in ({"name": ""}, {"agentic": "goal"}, {"is_public": [True]}):
        answer = client.put(f"/projects/{project['id']}", json=body)
        assert answer.status_code == 422, body
    assert client.put("/projects/nope", json={"name": "y"}).status_code == 404
    assert client.post("/projects", content=b"{not json",
                       headers={"content-type": "application/json"}).status_code == 422
    assert _rows(client, "SELECT * FROM projects") == before


def test_examples_are_listed_resolved_and_copied(client):
    examples = client.get("/projects/examples").json()["examples"]
    assert [e["id"] for e in examples] == ["legal-reviewer", "cover-letter",
                                           "writing-assistant", "fitness-coach"]
    assert [e["name"] for e in examples] == ["Legal Document Reviewer", "Cover Letter Writer",
                                             "Writing Assistant", "Fitness Advice"]
    for shown in examples:
        assert shown["is_example"] is True and shown["is_public"] is True
        assert shown["files"] == [] and shown["created_at"] == 0 and len(shown["instructions"]) > 80
    assert client.get("/projects").json()["projects"] == []  # examples are not projects
    resolved = client.get("/projects/legal-reviewer").json()["project"]
    assert resolved["name"] == "Legal Document Reviewer"

    copied = client.post("/projects/from-example/cover-letter")
    assert copied.status_code == 201
    project = copied.json()["project"]
    assert project["id"] != "cover-letter" and len(project["id"]) == 36
    assert project["name"] == "Cover Letter Writer" and project["is_public"] is False
    assert project["instructions"] == examples[1]["instructions"]
    missing = client.post("/projects/from-example/nope")
    assert missing.status_code == 404 and missing.json()["message"] == "Example not found"
    assert len(client.get("/projects").json()["projects"]) == 1


def test_deleting_a_project_removes_its_documents_rows_and_files(client):
    from server.routers.projects import project_folder
    from server.storage.projects import Document

    state = client.app.state.homepilot
    project = client.post("/projects", json={"name": "Docs"}).json()["project"]
    other = client.post("/projects", json={"name": "Other"}).json()["project"]
    for owner in (project, other):
        folder = project_folder(state, owner["id"]) / "documents"
        folder.mkdir(parents=True)
        (folder / "a.txt").write_text("hello")
        state.projects.add_document(owner["id"], Document(
            name="a.txt", size="0.00 MB", size_bytes=5,
            path=f"projects/{owner['id']}/documents/a.txt", chunks=1, source_type="document"))
    documents = client.get(f"/projects/{project['id']}/documents").json()["documents"]
    assert documents == [{"name": "a.txt", "size": "0.00 MB", "chunks": 1,
                          "source_type": "document",
                          "path": f"projects/{project['id']}/documents/a.txt"}]
    assert client.get(f"/projects/{project['id']}").json()["project"]["document_count"] == 1

    client.delete(f"/projects/{project['id']}")
    assert _rows(client, "SELECT project_id FROM project_documents") == [(other["id"],)]
    assert not project_folder(state, project["id"]).exists()
    assert (project_folder(state, other["id"]) / "documents" / "a.txt").read_text() == "hello"
    assert client.get(f"/projects/{project['id']}/documents").status_code == 404
