"""Project knowledge bases over HTTP: uploads ingested by graphs/ingest.yaml, project chat
by graphs/rag_chat.yaml with cited sources, refusals that write nothing, deletions."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.executors.base import Executor
from engine.settings import Settings, get_settings
from server.app import create_app
from tests.fixtures.knowledge.documents import docx_bytes, jpeg_with_exif, pdf_bytes

SENTENCE = "The keeper's vault code is amber falcon 7319."
QUESTION = "What is the keeper's vault code?"
LABELLED = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"


@pytest.fixture
def app_for(tmp_path, registry) -> Iterator[Callable[..., TestClient]]:
    """app_for(executor, **settings) -> a started TestClient over a fresh home whose model
    store holds the test home's models (the bundled MiniLM and SmolLM2)."""
    opened: list[TestClient] = []

    def make(executor: Executor, **fields) -> TestClient:
        home = tmp_path / f"home{len(opened)}"
        home.mkdir()
        (home / "models").symlink_to(get_settings().models_dir)
        client = TestClient(create_app(Settings(home=home, **fields), registry, executor))
        client.__enter__()
        opened.append(client)
        return client
    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _rows(client: TestClient, sql: str, params: list | None = None) -> list[tuple]:
    return client.app.state.homepilot.db.read(sql, params or [])


def _files(client: TestClient) -> set[str]:
    root = client.app.state.homepilot.files.root
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} \
        if root.exists() else set()


def _snapshot(client: TestClient) -> tuple:
    return (_rows(client, "SELECT project_id, document, page, text FROM knowledge_chunks "
                          "ORDER BY id"),
            _rows(client, "SELECT project_id, name, chunks FROM project_documents ORDER BY name"),
            _files(client))


def _kept(client: TestClient, project_id: str, name: str) -> Path:
    """Where an uploaded document is kept (the path its ``files`` entry names)."""
    return client.app.state.homepilot.files.root / "projects" / project_id / "documents" / name


def _project(client: TestClient, **fields) -> str:
    body = {"name": "Lighthouse", "instructions": "Answer briefly.", **fields}
    return client.post("/projects", json=body).json()["project"]["id"]


def _upload(client: TestClient, project_id: str, name: str, data: bytes):
    return client.post(f"/projects/{project_id}/upload", files={"file": (name, data)})


def test_a_pdf_and_a_docx_are_ingested_and_project_chat_cites_page_17(app_for, executor):
    client = app_for(executor)
    project_id = _project(client)
    pdf = pdf_bytes(30, {17: SENTENCE})
    added = _upload(client, project_id, "report.pdf", pdf)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["ok"] and body["filename"] == "report.pdf" and body["source_type"] == "document"
    assert body["size_bytes"] == len(pdf) and body["chunks_added"] >= 30
    pages = _rows(client, "SELECT DISTINCT page FROM knowledge_chunks WHERE document = ? "
                          "ORDER BY page", ["report.pdf"])
    assert [p for (p,) in pages] == list(range(1, 31))
    on_17 = _rows(client, "SELECT text FROM knowledge_chunks WHERE page = 17")
    assert any(SENTENCE in text for (text,) in on_17)
    assert not any(SENTENCE in t for (t,) in _rows(
        client, "SELECT text FROM knowledge_chunks WHERE page <> 17"))

    docx = docx_bytes(["Opening hours: the lighthouse museum opens at nine.",
                       "Tickets cost four euros."], [["Day", "Guide"], ["Monday", "Ines"]])
    assert _upload(client, project_id, "guide.docx", docx).status_code == 201
    docx_text = " ".join(t for (t,) in _rows(
        client, "SELECT text FROM knowledge_chunks WHERE document = 'guide.docx'"))
    assert "museum opens at nine" in docx_text and "Monday | Ines" in docx_text
    files = client.get(f"/projects/{project_id}/documents").json()["documents"]
    assert [(f["name"], f["source_type"]) for f in files] == [("report.pdf", "document"),
                                                              ("guide.docx", "document")]
    assert files[0]["path"] == f"projects/{project_id}/documents/report.pdf"
    assert _kept(client, project_id, "report.pdf").read_bytes() == pdf

    asked = client.post("/chat", json={"message": QUESTION, "project_id": project_id,
                                       "textMaxTokens": 24, "textTemperature": 0})
    assert asked.status_code == 200, asked.text
    text = asked.json()["text"]
    assert SENTENCE in text and "report.pdf, page 17" in text
    assert text.index("Sources:") < text.index("report.pdf, page 17")

    plain = client.post("/chat", json={"message": QUESTION, "textMaxTokens": 24,
                                       "textTemperature": 0})
    assert plain.status_code == 200
    assert "amber falcon 7319" not in plain.json()["text"]
    assert "Sources:" not in plain.json()["text"]


def test_streamed_and_openai_project_chats_carry_the_sources(app_for, executor):
    client = app_for(executor)
    project_id = _project(client)
    # No documents yet: the plain chat with the project's instructions, no sources.
    bare = client.post("/chat", json={"message": QUESTION, "project_id": project_id,
                                      "textMaxTokens": 8})
    assert bare.status_code == 200 and "Sources:" not in bare.json()["text"]
    assert _upload(client, project_id, "notes.txt",
                   f"Harbour notes.\n\n{SENTENCE}\n\nThe tide tables are in the shed.".encode()
                   ).status_code == 201
    with client.stream("POST", "/chat/stream", json={
            "message": QUESTION, "project_id": project_id, "textMaxTokens": 16,
            "textTemperature": 0}) as response:
        frames = [json.loads(line[5:]) for line in response.iter_lines()
                  if line.startswith("data:")]
    streamed = "".join(f.get("delta", "") for f in frames)
    done = frames[-1]
    assert done["done"] and streamed == done["text"]
    assert SENTENCE in done["text"] and "notes.txt" in done["text"]

    reply = client.post("/v1/chat/completions", json={
        "model": "default", "project": project_id, "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": QUESTION}]})
    assert reply.status_code == 200, reply.text
    assert SENTENCE in reply.json()["choices"][0]["message"]["content"]
    missing = client.post("/chat", json={"message": "hi", "project_id": "nope"})
    assert missing.status_code == 404


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_refused_uploads_are_4xx_and_write_nothing(app_for, executor):
    client = app_for(executor, max_upload_mb=1)
    project_id = _project(client)
    assert _upload(client, project_id, "ok.md", b"# Kept\nA first document.").status_code == 201
    before = _snapshot(client)
    staged_before = set(executor.file_store().root.glob("f_*"))
    cases = [
        ("report.pdf", b"PK\x03\x04 not a pdf at all", 400, "invalid_file_type"),
        ("sheet.xlsx", pdf_bytes(1, {}), 400, "invalid_file_type"),
        ("letter.docx", b"PK\x03\x04" + b"\x00" * 64, 400, "invalid_file_type"),
        ("photo.png", b"\xff\xd8\xff\xe0 a jpeg named png", 400, "invalid_file_type"),
        ("notes.txt", b"\x00\x01binary\xff\xfe", 400, "invalid_file_type"),
        ("script.exe", b"MZ\x90\x00", 400, "invalid_file_type"),
        ("../escape.txt", b"text", 400, "invalid_file_type"),
        ("empty.txt", b"", 400, "empty_file"),
        ("big.txt", b"a" * (1024 * 1024 + 1), 413, "file_too_large"),
        ("broken.pdf", b"%PDF-1.4 and then nothing a reader can use", 400,
         "unreadable_document"),
    ]
    for name, data, status, code in cases:
        answer = _upload(client, project_id, name, data)
        assert (answer.status_code, answer.json().get("code")) == (status, code), name
    unknown = _upload(client, "no-such-project", "a.txt", b"text")
    assert unknown.status_code == 404
    assert _snapshot(client) == before
    # The staging copy of the one upload that reached the graph is gone too.
    assert set(executor.file_store().root.glob("f_*")) == staged_before


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_a_picture_gets_a_caption_and_its_copy_loses_exif(app_for, executor):
    from PIL import Image

    client = app_for(executor)
    project_id = _project(client)
    jpeg = jpeg_with_exif((200, 30, 30), "Secret Camera 3000")
    added = _upload(client, project_id, "Red Barn.jpg", jpeg)
    assert added.status_code == 201 and added.json()["source_type"] == "image"
    (caption,), = _rows(client, "SELECT text FROM knowledge_chunks WHERE project_id = ?",
                        [project_id])
    assert caption.startswith("Image Red Barn.jpg: a 64x48 JPEG picture") and "red" in caption
    kept = _kept(client, project_id, "Red Barn.jpg")
    assert b"Secret Camera 3000" in jpeg and b"Secret Camera 3000" not in kept.read_bytes()
    with Image.open(io.BytesIO(kept.read_bytes())) as opened:
        assert opened.size == (64, 48) and not opened.getexif()


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_deleting_a_document_then_the_project_removes_chunks_vectors_and_files(app_for,
                                                                                executor):
    client = app_for(executor)
    project_id = _project(client)
    other = _project(client, name="Other")
    for name in ("a.txt", "b.txt"):
        assert _upload(client, project_id, name, f"{name} is about tides.".encode()
                       ).status_code == 201
    assert _upload(client, other, "a.txt", b"Another project's tides.").status_code == 201
    folder = _kept(client, project_id, "a.txt").parent

    # Each document can be downloaded by the path its files entry names.
    entry = next(f for f in client.get(f"/projects/{project_id}").json()["project"]["files"]
                 if f["name"] == "b.txt")
    got = client.get(f"/files/{entry['path']}")
    assert got.status_code == 200 and got.content == b"b.txt is about tides."
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["content-disposition"].startswith("attachment")
    for wrong in (f"/files/projects/{project_id}/documents/c.txt",
                  f"/files/projects/{other}/documents/b.txt",
                  f"/files/projects/{project_id}/documents/..%2F..%2Fhomepilot.duckdb"):
        assert client.get(wrong).status_code == 404, wrong

    gone = client.delete(f"/projects/{project_id}/documents/a.txt")
    assert gone.status_code == 200
    assert _rows(client, "SELECT document FROM knowledge_chunks WHERE project_id = ?",
                 [project_id]) == [("b.txt",)]
    assert not (folder / "a.txt").exists() and (folder / "b.txt").exists()
    assert client.get(f"/files/projects/{project_id}/documents/a.txt").status_code == 404
    assert client.delete(f"/projects/{project_id}/documents/a.txt").status_code == 404

    assert client.delete(f"/projects/{project_id}").status_code == 200
    assert _rows(client, "SELECT count(*) FROM knowledge_chunks WHERE project_id = ?",
                 [project_id]) == [(0,)]
    assert not folder.exists()
    # The other project's chunk (and its vector) is untouched and still found.
    assert _rows(client, "SELECT project_id, document FROM knowledge_chunks") == [
        (other, "a.txt")]
    hits = client.app.state.homepilot.db.read(
        "SELECT count(*) FROM knowledge_chunks WHERE embedding IS NOT NULL")
    assert hits == [(1,)]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_hybrid_retrieval_beats_vector_and_bm25_on_the_labelled_set(app_for, executor):
    from nodes.retrieval import fuse
    from server.services import knowledge

    client = app_for(executor)
    project_id = _project(client)
    for document in sorted(LABELLED.glob("set/*.md")):
        assert _upload(client, project_id, document.name, document.read_bytes()
                       ).status_code == 201
    questions = json.loads((LABELLED / "questions.json").read_text())
    assert len(questions) >= 50 and len({q["doc"] for q in questions}) >= 5
    state = client.app.state.homepilot
    found = {"vector": 0, "bm25": 0, "hybrid": 0}
    for item in questions:
        hits = knowledge.search(state, project_id, item["q"])
        ranked = {"vector": hits["vector"][:5], "bm25": hits["keyword"][:5],
                  "hybrid": fuse([hits["vector"], hits["keyword"]], top_k=5)}
        for method, top in ranked.items():
            found[method] += any(h["document"] == item["doc"] and item["answer"] in h["text"]
                                 for h in top)
    recall = {method: hits / len(questions) for method, hits in found.items()}
    print(f"\nrecall@5 over {len(questions)} questions: " +
          ", ".join(f"{m} {r:.3f}" for m, r in recall.items()))
    assert recall["hybrid"] >= 0.9
    assert recall["hybrid"] > recall["vector"] and recall["hybrid"] > recall["bm25"]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_a_cancelled_upload_is_499_and_leaves_nothing_behind(app_for, executor):
    import threading

    client = app_for(executor)
    project_id = _project(client)
    before = _snapshot(client)
    staged_before = set(executor.file_store().root.glob("f_*"))
    state = client.app.state.homepilot
    answers: list = []
    uploading = threading.Thread(target=lambda: answers.append(_upload(
        client, project_id, "long.pdf", pdf_bytes(120, {}))))
    uploading.start()
    # Cancel the ingest run (as POST /runs/{id}/cancel does) once it reports embedding.
    embedding = threading.Event()
    while not embedding.is_set() and uploading.is_alive():
        for record in state.runs.records():
            if record.graph.name == "ingest" and any(
                    e.type == "node_progress" and e.node_id in ("chunk", "embed")
                    for e in list(record.handle.events)):
                assert client.post(f"/runs/{record.run_id}/cancel").status_code == 200
                embedding.set()
        embedding.wait(0.05)
    uploading.join(120)
    assert embedding.is_set() and answers[0].status_code == 499
    assert answers[0].json()["code"] == "cancelled"
    assert _snapshot(client) == before
    assert set(executor.file_store().root.glob("f_*")) == staged_before
