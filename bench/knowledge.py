"""Project knowledge bases: ingestion through the graph against the same functions called
directly, and hybrid retrieval latency at 10k and 100k chunks.

Ingest: a PDF of --pages pages (fpdf2, from the test extra) goes through graphs/ingest.yaml
on the LocalExecutor, and through the very functions its nodes call (extract, the
embedder's token offsets, split, embed in batches of 64) on the same warm model host.
Figures: pages/s of each (median of --repeat), the graph / direct ratio (target >= 0.9x),
and the mean batch size the embedding host saw during the graph runs.

Retrieval: --sizes synthetic chunks (random vectors, text of Zipf-distributed words)
in a DuckDB file with the server's own migrations (HNSW + BM25), one project holding them
all (the worst case). p50/p99 over --queries queries of: HNSW nearest 20, BM25 best 20,
and hybrid (both at once on two cursors, then reciprocal rank fusion), through
``KnowledgeBase``, as project chat runs them. Target: hybrid p50 < 50 ms at 100k, growing
sublinearly from 10k.

Usage: python bench/knowledge.py [--pages 40] [--repeat 3] [--sizes 10000,100000]
                                 [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# 4,000 made-up words: documents have large vocabularies, and a small one would put
# every query word in nearly every chunk.
WORDS = [f"{a}{b}{c}" for a in ("ka", "lo", "mi", "ne", "su", "ta", "ve", "ro", "pi", "da",
                                "bo", "fe", "gu", "hi", "jo", "ku", "la", "mo", "nu", "po")
         for b in ("ber", "dan", "fol", "gem", "hik", "jur", "kas", "lum", "mor", "nix",
                   "pra", "quo", "ris", "sol", "tev", "ulm", "vor", "wex", "yal", "zin")
         for c in ("a", "e", "i", "o", "u", "an", "en", "in", "on", "un")]


def make_pdf(pages: int) -> bytes:
    from fpdf import FPDF

    rng = random.Random(7)
    english = ("the keeper wrote down the weather tides storms lamp oil rope paint radio "
               "boats winter rations lens rust visitors logbook shipwrecks stairs rainfall "
               "pier garden flags maps library boathouse bell ice cistern vane").split()
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for number in range(1, pages + 1):
        pdf.add_page()
        for _ in range(12):
            sentence = " ".join(rng.choice(english) for _ in range(14))
            pdf.multi_cell(0, 6, f"{sentence.capitalize()}.", new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(0, 6, f"End of page {number}.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def ingest_direct(data: bytes, host: object) -> int:
    """The ingest graph's work without the graph: the same functions, the same host."""
    from nodes.backends.extract import extract, split
    from nodes.knowledge import EMBED_BATCH

    found = extract(data, "bench.pdf")
    texts = [s.text for s in found.sections]
    offsets = host.call("token_offsets", texts)  # type: ignore[attr-defined]
    chunks = [piece for text, spans in zip(texts, offsets, strict=True)
              for piece in split(text, [tuple(p) for p in spans], 128, 32)]
    vectors: list[list[float]] = []
    for start in range(0, len(chunks), EMBED_BATCH):
        vectors += host.call("embed", chunks[start:start + EMBED_BATCH])  # type: ignore[attr-defined]
    assert len(vectors) == len(chunks)
    return found.pages


def bench_ingest(pages: int, repeat: int) -> None:
    from engine.executors.local import LocalExecutor
    from engine.loader import load_graph
    from nodes import build_registry
    from nodes.backends.bundled import MINILM

    data = make_pdf(pages)
    executor = LocalExecutor(build_registry())
    graph = load_graph(REPO / "graphs" / "ingest.yaml")
    host = executor.models().get("embedding", MINILM)
    store = executor.file_store()

    def graph_run() -> float:
        file_id = store.save(data, ".pdf")
        start = time.perf_counter()
        result = executor.run(graph, {"file": file_id, "name": "bench.pdf"}, timeout=600)
        elapsed = time.perf_counter() - start
        assert result.status == "success", result.error
        store.path(file_id).unlink()
        return pages / elapsed

    def direct_run() -> float:
        start = time.perf_counter()
        ingest_direct(data, host)
        return pages / (time.perf_counter() - start)

    try:
        direct_run()
        graph_run()  # warm: model loaded, libraries imported
        before = _embed_batches(executor)
        graph_rates, direct_rates = [], []
        for _ in range(repeat):  # interleaved: load from elsewhere hits both alike
            graph_rates.append(graph_run())
            direct_rates.append(direct_run())
        after = _embed_batches(executor)
    finally:
        executor.close()
    graph_rate, direct_rate = statistics.median(graph_rates), statistics.median(direct_rates)
    batches, items = after[0] - before[0], after[1] - before[1]
    print(f"ingest, {pages}-page PDF, median of {repeat} (LocalExecutor):")
    print(f"  direct functions {direct_rate:7.1f} pages/s")
    print(f"  ingest graph     {graph_rate:7.1f} pages/s   graph / direct = "
          f"{graph_rate / direct_rate:.2f}x")
    # Both the graph and the direct calls went to the host in these rounds.
    print(f"  embedding host: {items} texts in {batches} forward passes "
          f"(mean batch {items / max(batches, 1):.1f})")


def _embed_batches(executor: object) -> tuple[int, int]:
    from nodes.backends.bundled import MINILM

    for host in executor.model_status():  # type: ignore[attr-defined]
        if host["id"] == MINILM:
            embed = host["batches"]["embed"]
            return embed["batches"], embed["items"]
    return 0, 0


def build_corpus(db: object, size: int) -> None:
    """``size`` chunks written in SQL (random vectors: cosine ignores their length;
    Zipf-ish words), then both indexes rebuilt as an ingestion would leave them."""
    words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    with db.write() as cursor:  # type: ignore[attr-defined]
        cursor.execute("DROP INDEX IF EXISTS knowledge_chunks_hnsw")
        cursor.execute("DELETE FROM knowledge_chunks")
        cursor.execute(
            "INSERT INTO projects (id, name, created_at, updated_at) VALUES ('bench', 'b', 0, 0) "
            "ON CONFLICT DO NOTHING")
        cursor.execute(
            "INSERT INTO knowledge_chunks (project_id, document, page, section, position, "
            "text, embedding) SELECT 'bench', 'doc' || (i // 100) || '.pdf', i % 100 + 1, "
            "'page ' || (i % 100 + 1), i, (SELECT string_agg(" + words + "[1 + floor(pow("
            f"random(), 3) * {len(WORDS)})::INT], ' ') FROM range(60 + i * 0)), "
            "(SELECT list(random() - 0.5) FROM range(384 + i * 0))::FLOAT[384] "
            f"FROM range({size}) t(i)")
        cursor.execute("CREATE INDEX knowledge_chunks_hnsw ON knowledge_chunks USING HNSW "
                       "(embedding) WITH (metric = 'cosine')")


def bench_retrieval(sizes: list[int], queries: int, path: Path | None) -> None:
    from nodes.retrieval import fuse
    from server.storage.database import Database
    from server.storage.knowledge import KnowledgeBase

    rng = random.Random(11)
    path = path or Path(tempfile.mkdtemp(prefix="homepilot-bench-kb-")) / "bench.duckdb"
    db = Database(path)
    base = KnowledgeBase(db)
    print(f"retrieval, one project holding every chunk, {queries} queries each:")
    try:
        for size in sizes:
            start = time.perf_counter()
            if base.count("bench") != size:  # a --db from an earlier run may hold it
                build_corpus(db, size)
            built = time.perf_counter() - start
            # The first BM25 search of a project after a restart builds its postings
            # from the rows; later ones reuse them.
            base.lexicon.forget("bench")
            t0 = time.perf_counter()
            base.keyword("bench", WORDS[30], 20)
            cold = time.perf_counter() - t0
            timings: dict[str, list[float]] = {"hnsw": [], "bm25": [], "hybrid": []}
            for _ in range(queries):
                vector = [rng.gauss(0, 1) for _ in range(384)]
                norm = sum(x * x for x in vector) ** 0.5
                vector = [x / norm for x in vector]
                text = " ".join(rng.choice(WORDS[20:1000]) for _ in range(3))
                t0 = time.perf_counter()
                base.nearest("bench", vector, 20)
                t1 = time.perf_counter()
                base.keyword("bench", text, 20)
                t2 = time.perf_counter()
                # What project chat does: both searches at once, then the fusion.
                found = base.candidates("bench", text, vector, 20)
                fuse([[h.model_dump() for h in hits] for hits in found.values()], 4)
                t3 = time.perf_counter()
                timings["hnsw"].append(t1 - t0)
                timings["bm25"].append(t2 - t1)
                timings["hybrid"].append(t3 - t2)
            print(f"  {size:>7} chunks (ready in {built:.0f} s; postings built on the first "
                  f"search in {cold:.2f} s):\n           " + "   ".join(
                f"{name} p50 {_pct(v, 50):5.1f} ms p99 {_pct(v, 99):5.1f} ms"
                for name, v in timings.items()))
    finally:
        db.close()
    print(f"  (database kept in {path}: --db reuses it)")


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--db", type=Path, help="a database an earlier run built (kept in "
                        "a temporary folder): its chunks are reused when the size matches")
    args = parser.parse_args()
    os.environ.setdefault("HOMEPILOT_HOME", tempfile.mkdtemp(prefix="homepilot-bench-"))
    sys.path.insert(0, str(REPO))
    from engine.models.store import ModelStore
    from engine.settings import get_settings
    from nodes.backends.bundled import register_bundled

    register_bundled(ModelStore(get_settings().models_dir))
    if not args.skip_ingest:
        bench_ingest(args.pages, args.repeat)
    bench_retrieval([int(s) for s in args.sizes.split(",")], args.queries, args.db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
