"""Knowledge nodes: extraction per format, token chunking, the ingest graph on both
executors (progress, batches, cancellation), and rank fusion with citations."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from engine.events import Event
from engine.loader import load_graph
from nodes.backends.extract import ExtractError, dominant_colours, extract, split
from nodes.retrieval import Cite, fuse, quote
from tests.fixtures.knowledge.documents import (
    docx_bytes,
    jpeg_with_exif,
    pdf_bytes,
    xlsx_bytes,
)

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
INGEST = load_graph(GRAPHS / "ingest.yaml")


def test_a_pdf_gives_one_section_per_page_with_its_number():
    found = extract(pdf_bytes(5, {3: "A marker sentence on page three."}), "r.pdf")
    assert found.pages == 5 and found.source_type == "document"
    assert [s.page for s in found.sections] == [1, 2, 3, 4, 5]
    assert [s.label for s in found.sections][2] == "page 3"
    assert "A marker sentence on page three." in found.sections[2].text
    assert "marker" not in found.sections[1].text


def test_word_keeps_paragraphs_and_tables_in_order_and_excel_gives_sheets():
    word = extract(docx_bytes(["First paragraph.", "Second paragraph."],
                              [["Name", "Age"], ["Ada", "36"]]), "w.docx")
    assert word.sections[0].text == "First paragraph.\nSecond paragraph.\nName | Age\nAda | 36"
    book = extract(xlsx_bytes({"Budget": [["item", "cost"], ["rope", 12]],
                               "Staff": [["Ines", None, "keeper"]]}), "b.xlsx")
    assert [(s.page, s.label) for s in book.sections] == [(1, "sheet Budget"),
                                                          (2, "sheet Staff")]
    assert book.sections[0].text == "Sheet Budget:\nitem | cost\nrope | 12"
    assert book.sections[1].text == "Sheet Staff:\nInes |  | keeper"


def test_a_picture_gets_a_caption_and_a_copy_without_exif():
    from PIL import Image

    jpeg = jpeg_with_exif((30, 60, 210), "Pocket Cam")
    found = extract(jpeg, "sky.jpeg")
    assert found.source_type == "image" and found.clean is not None
    assert found.sections[0].text.startswith("Image sky.jpeg: a 64x48 JPEG picture of ")
    assert "blue" in found.sections[0].text
    assert b"Pocket Cam" not in found.clean
    with Image.open(io.BytesIO(found.clean)) as clean:
        assert clean.size == (64, 48) and not clean.getexif()
    assert dominant_colours(Image.new("RGB", (8, 8), (250, 250, 250)))[0] == "white"


def test_a_damaged_file_is_an_extract_error_naming_it():
    with pytest.raises(ExtractError, match="broken.docx"):
        extract(b"PK\x03\x04garbage", "broken.docx")


def test_split_makes_overlapping_token_windows_that_cover_the_text():
    text = " ".join(f"w{i}" for i in range(10))
    offsets = []
    position = 0
    for word in text.split(" "):
        offsets.append((position, position + len(word)))
        position += len(word) + 1
    pieces = split(text, offsets, size=4, overlap=1)
    assert pieces == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]
    assert split(text, offsets, size=20, overlap=5) == [text]
    assert split("   ", [], 4, 1) == []


def test_fusion_rewards_agreement_and_keeps_the_top_k():
    a, b, c, d = ({"id": i, "document": "x", "text": str(i)} for i in range(4))
    fused = fuse([[a, b, c], [c, d, a]], top_k=3)
    assert [h["id"] for h in fused] == [0, 2, 1]  # a: ranks 1 and 3; c: 3 and 1; b: 2
    assert fused[0]["score"] == pytest.approx(1 / 61 + 1 / 63)


def test_cite_appends_exact_sources_and_streams_them(run_node):
    passages = [{"id": 7, "document": "report.pdf", "page": 17, "section": "page 17",
                 "text": "Chapter 17. The vault code is amber 7319. Nothing else."}]
    ran = run_node(Cite, answer="It is amber.", passages=passages,
                   question="What is the vault code?")
    assert ran["text"] == ('It is amber.\n\nSources:\n[1] report.pdf, page 17: '
                           '"The vault code is amber 7319."')
    assert ran["sources"][0]["page"] == 17
    assert quote("No match here. None.", "zebra") == "No match here."


def _staged(executor, data: bytes, suffix: str) -> str:
    return executor.file_store().save(data, suffix)


def test_the_ingest_graph_chunks_by_page_and_embeds_in_full_batches(executor):
    pdf = pdf_bytes(12, {9: "The keeper's vault code is amber falcon 7319."})
    events: list[Event] = []
    result = executor.run(INGEST, {"file": _staged(executor, pdf, ".pdf"), "name": "r.pdf",
                                   "size": 48, "overlap": 8},
                          listener=events.append, timeout=300)
    assert result.status == "success", result.error
    chunks, vectors = result.outputs["chunks"], result.outputs["vectors"]
    assert result.outputs["pages"] == 12 and result.outputs["source_type"] == "document"
    assert {c["page"] for c in chunks} == set(range(1, 13))
    assert len(vectors) == len(chunks) and {len(v) for v in vectors} == {384}
    assert [c["page"] for c in chunks if "amber falcon" in c["text"]] == [9]
    assert all(c["section"] == f"page {c['page']}" for c in chunks)
    embed_progress = [e.data for e in events if e.type == "node_progress"
                      and e.node_id == "embed"]
    assert embed_progress and embed_progress[-1]["value"] == len(chunks)


def test_a_cancelled_ingestion_ends_cancelled_with_no_outputs(executor):
    # Enough pages for several embedding batches; cancelled at the first progress.
    pdf = pdf_bytes(60, {})
    cancelled = threading.Event()
    started = threading.Event()
    handles: list = []

    def on_event(event: Event) -> None:
        if event.type == "node_progress" and event.node_id == "embed" \
                and not cancelled.is_set():
            cancelled.set()
            started.wait(60)  # the handle is assigned just after submit returns
            handles[0].cancel()

    handle = executor.submit(INGEST, {"file": _staged(executor, pdf, ".pdf"), "name": "c.pdf",
                                      "size": 24, "overlap": 4}, listener=on_event)
    handles.append(handle)
    started.set()
    result = handle.result(300)
    assert cancelled.is_set() and result.status == "cancelled"
    assert not result.outputs
