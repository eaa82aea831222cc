"""Project knowledge bases: an upload becomes a run of graphs/ingest.yaml whose chunks and
vectors are stored when it finishes; a project chat searches them and runs
graphs/rag_chat.yaml.

Nothing is written unless everything worked: the upload waits in the executor's file
store (where the graph's nodes read it) and is removed whatever happens; the kept file
and the database rows are written last, the rows in one transaction.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from engine.files import write_atomic
from engine.graph import Graph
from server.errors import ApiError
from server.routers.projects import project_folder
from server.services.graphs import load_named
from server.services.runs import until_done
from server.state import AppState
from server.storage.knowledge import Chunk, KnowledgeBase
from server.storage.projects import Document, megabytes

INGEST_TIMEOUT = 3600.0
SEARCH_DEPTH = 20  # candidates from each search handed to the fusion


def knowledge(state: AppState) -> KnowledgeBase:
    return KnowledgeBase(state.db)


async def ingest(state: AppState, project_id: str, name: str, data: bytes) -> Document:
    """Run the ingest graph on the upload and store its chunks under ``name``."""
    store = state.executor.file_store()
    suffix = "." + name.rsplit(".", 1)[-1].lower()
    staged = await asyncio.to_thread(store.save, data, suffix)
    made: set[str] = {staged}
    record = None
    try:
        graph = load_named(state.graphs_dir, "ingest")
        record = await asyncio.to_thread(state.runs.start, graph,
                                         {"file": staged, "name": name})
        await until_done(record.handle, INGEST_TIMEOUT)
        result = record.handle.result(0)
        if result.status != "success":
            raise _failure(result.error.error_type if result.error else "",
                           result.error.message if result.error else result.status, name)
        outputs = result.outputs
        made.add(outputs["stored"])
        chunks = [Chunk(page=c["page"], section=c["section"], text=c["text"])
                  for c in outputs["chunks"]]
        kept = store.read(outputs["stored"])
        return await asyncio.to_thread(_keep, state, project_id, name, kept, chunks,
                                       outputs["vectors"], outputs["source_type"])
    finally:
        if record is not None and not record.handle.done():
            record.handle.cancel()  # the client went away: stop the graph too
        for file_id in made:
            await asyncio.to_thread(_remove, store.path(file_id))


def _failure(error_type: str, message: str, name: str) -> ApiError:
    if error_type == "ExtractError":
        return ApiError(400, "unreadable_document", message)
    if error_type == "" and message == "cancelled":
        return ApiError(499, "cancelled", f"the ingestion of {name} was cancelled")
    return ApiError(500, "ingest_failed", f"Failed to upload file: {message}")


def _keep(state: AppState, project_id: str, name: str, data: bytes, chunks: list[Chunk],
          vectors: list[list[float]], source_type: str) -> Document:
    """The file into the project's folder, then its rows; the file goes again if the
    rows cannot be written."""
    folder = documents_folder(state, project_id)
    target = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data)
    document = Document(name=name, size=megabytes(len(data)), size_bytes=len(data),
                        path=f"projects/{project_id}/documents/{name}", chunks=len(chunks),
                        source_type=source_type)
    try:
        knowledge(state).store(project_id, document, chunks, vectors)
    except BaseException:
        _remove(target)
        raise
    return document


def remove(state: AppState, project_id: str, name: str) -> bool:
    """Delete a document's rows (chunks and vectors with them), then its file."""
    if knowledge(state).remove(project_id, name) is None:
        return False
    _remove(documents_folder(state, project_id) / name)
    return True


def kept_file(state: AppState, project_id: str, name: str) -> Path | None:
    """The kept file of a document the project's rows name, else None (a name that is
    no document of the project is never looked up on disk)."""
    known = state.db.read("SELECT 1 FROM project_documents WHERE project_id = ? AND "
                          "name = ?", [project_id, name])
    if not known:
        return None
    path = documents_folder(state, project_id) / name
    return path if path.is_file() and not path.is_symlink() else None


def documents_folder(state: AppState, project_id: str) -> Path:
    """Where a project's documents are kept (in its folder of the file store)."""
    return project_folder(state, project_id) / "documents"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- project chat ----------------------------------------------------------------------

def search(state: AppState, project_id: str, question: str,
           depth: int = SEARCH_DEPTH) -> dict[str, list[dict[str, Any]]]:
    """Both rankings of the project's chunks for ``question`` (the question is embedded
    by a run of graphs/embed.yaml, on the same host that embedded the chunks)."""
    base = knowledge(state)
    if base.count(project_id) == 0:
        return {"vector": [], "keyword": []}
    found = base.candidates(project_id, question, embed(state, question), depth)
    return {name: [h.model_dump() for h in hits] for name, hits in found.items()}


def embed(state: AppState, text: str) -> list[float]:
    record = state.runs.start(load_named(state.graphs_dir, "embed"), {"texts": [text]})
    result = record.handle.result(120)
    if result.status != "success":
        message = result.error.message if result.error else result.status
        raise ApiError(502, "embedding_failed", f"the question could not be embedded: "
                       f"{message}")
    return [float(x) for x in result.outputs["vectors"][0]]


def plan(state: AppState, project_id: str,
         inputs: dict[str, Any]) -> tuple[Graph, dict[str, Any]]:
    """A chat graph's inputs turned into a project chat: rag_chat.yaml with the project's
    instructions (before any other system prompt) and the candidates from its knowledge
    base; chat.yaml with the instructions while it has no documents. 404 for an unknown
    project."""
    project = state.projects.get(project_id)
    if project is None:
        raise ApiError(404, "not_found", f"Project '{project_id}' not found")
    instructions = "\n\n".join(p for p in (project.instructions, inputs.get("system", ""))
                               if p)
    hits = search(state, project_id, inputs["message"])
    if not hits["vector"] and not hits["keyword"]:
        # No documents yet (a persona, say): the plain chat, with the project's prompt.
        return load_named(state.graphs_dir, "chat"), {**inputs, "system": instructions}
    rag = {k: v for k, v in inputs.items() if k != "system"}
    return load_named(state.graphs_dir, "rag_chat"), {**rag, "instructions": instructions,
                                                      "hits": hits}
