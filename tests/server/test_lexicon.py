"""BM25 from the in-memory lexicon equals DuckDB fts's own BM25 over the same rows, as
documents come and go, after merges and after a restart, one project at a time."""

from __future__ import annotations

import random

import pytest

from server.storage import lexicon
from server.storage.database import Database
from server.storage.knowledge import Chunk, KnowledgeBase
from server.storage.projects import Document

WORDS = ("valve pump pressure gasket torque bolt flange seal leak meter reading gauge "
         "inspection report failure mode cooling water steam boiler turbine rotor blade "
         "vibration bearing lubricant oil filter café naïve résumé error E42 code 7731 "
         "the of and is to in was running runs ran").split()


def chunks(rng: random.Random, count: int) -> list[Chunk]:
    return [Chunk(page=i + 1, section=f"page {i + 1}",
                  text=" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))))
            for i in range(count)]


def store(base: KnowledgeBase, project: str, name: str, parts: list[Chunk]) -> None:
    vectors = [[1.0] + [0.0] * 383 for _ in parts]
    base.store(project, Document(name=name, size="0.00 MB", size_bytes=0,
                                 path=f"projects/{project}/documents/{name}",
                                 chunks=len(parts), source_type="document"), parts, vectors)


def fts_ranking(db: Database, project: str, query: str, k: int) -> list[tuple[int, float]]:
    """fts's BM25 over the project's rows alone (its statistics are per table)."""
    cursor = db.cursor()
    try:
        cursor.execute("CREATE OR REPLACE TEMP TABLE ref AS SELECT id, text FROM "
                       "knowledge_chunks WHERE project_id = ?", [project])
        cursor.execute("PRAGMA create_fts_index('ref', 'id', 'text', stemmer='porter', "
                       "stopwords='english', ignore='(\\\\.|[^a-z0-9])+', strip_accents=1, "
                       "lower=1, overwrite=1)")
        rows = cursor.execute(
            "SELECT id, s FROM (SELECT id, fts_main_ref.match_bm25(id, ?) AS s FROM ref) "
            "WHERE s IS NOT NULL ORDER BY s DESC, id LIMIT ?", [query, k]).fetchall()
    finally:
        cursor.close()
    return [(int(i), float(s)) for i, s in rows]


def assert_same(db: Database, base: KnowledgeBase, project: str, rng: random.Random) -> int:
    """Twenty queries ranked alike by both; returns how many hits were compared."""
    compared = 0
    for _ in range(20):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        ours = base.lexicon.search(project, query, 10)
        theirs = fts_ranking(db, project, query, 10)
        assert len(ours) == len(theirs), query
        # float32 postings against fts's doubles: equal within a stated tolerance.
        assert [s for _, s in ours] == pytest.approx([t for _, t in theirs], rel=1e-4), query
        scores = [t for _, t in theirs]
        for n, ((i, _), (j, t)) in enumerate(zip(ours, theirs, strict=True)):
            near = [u for m, u in enumerate(scores) if m != n and abs(u - t) <= 1e-3 * t]
            if not near:  # a score no other hit shares: the same chunk holds it
                assert i == j, query
        compared += len(ours)
    return compared


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "kb.duckdb")
    if not database.fts:
        database.close()
        pytest.fail("the fts extension (duckdb-extension-fts) is a dependency: install it")
    yield database
    database.close()


def test_the_ranking_is_fts_bm25_as_documents_come_and_go(db, monkeypatch):
    monkeypatch.setattr(lexicon, "MAX_SEGMENTS", 4)
    rng = random.Random(3)
    base = KnowledgeBase(db)
    store(base, "other", "noise.pdf", chunks(rng, 60))  # never counted in "p"'s statistics
    for n in range(3):
        store(base, "p", f"doc{n}.pdf", chunks(rng, 40))
    assert assert_same(db, base, "p", rng) > 100
    segments = base.lexicon._segments["p"]
    assert len(segments) == 1 and len(segments[0].documents) == 3  # first search: one build

    # New documents get a segment each; one replaced keeps a single copy of its chunks.
    store(base, "p", "doc3.pdf", chunks(rng, 30))
    assert [sorted(s.documents) for s in base.lexicon._segments["p"]] == [
        ["doc0.pdf", "doc1.pdf", "doc2.pdf"], ["doc3.pdf"]]
    assert_same(db, base, "p", rng)
    # Replacing a document inside the merged segment: the project is built again.
    store(base, "p", "doc1.pdf", chunks(rng, 25))
    assert "p" not in base.lexicon._segments
    assert_same(db, base, "p", rng)
    # Removing a document of its own segment drops just that segment.
    base.remove("p", "doc3.pdf")
    assert_same(db, base, "p", rng)
    # More segments than MAX_SEGMENTS: the next search merges them.
    for n in range(4, 9):
        store(base, "p", f"doc{n}.pdf", chunks(rng, 10))
    assert_same(db, base, "p", rng)
    assert len(base.lexicon._segments["p"]) == 1
    # A document inside the merged segment goes: the project is built again.
    base.remove("p", "doc0.pdf")
    assert_same(db, base, "p", rng)
    hits = {i for q in WORDS for i, _ in base.lexicon.search("p", q, 1000)}
    kept = {row[0] for row in db.read("SELECT id FROM knowledge_chunks WHERE project_id = "
                                      "'p'")}
    assert hits and hits <= kept


def test_a_restart_builds_the_same_postings_and_other_projects_never_show(tmp_path):
    rng = random.Random(5)
    db = Database(tmp_path / "kb.duckdb")
    base = KnowledgeBase(db)
    store(base, "a", "a.pdf", chunks(rng, 50))
    store(base, "b", "b.pdf", chunks(rng, 50))
    queries = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(15)]
    before = [base.lexicon.search("a", q, 8) for q in queries]
    a_ids = {row[0] for row in db.read("SELECT id FROM knowledge_chunks WHERE project_id "
                                       "= 'a'")}
    assert all(i in a_ids for ranking in before for i, _ in ranking)
    db.close()
    again = Database(tmp_path / "kb.duckdb")
    try:
        after = [KnowledgeBase(again).lexicon.search("a", q, 8) for q in queries]
    finally:
        again.close()
    for first, second in zip(before, after, strict=True):
        assert [i for i, _ in first] == [i for i, _ in second]
        assert [s for _, s in first] == pytest.approx([s for _, s in second], rel=1e-6)


def test_query_terms_are_stemmed_lowercased_unaccented_and_keep_digits(db):
    base = KnowledgeBase(db)
    assert base.lexicon.terms("The Pumps were RUNNING; Café E42 at 7731!") == \
        sorted({"pump", "run", "cafe", "e42", "7731"})
    assert base.lexicon.terms("  ") == [] and base.lexicon.terms("the of and") == []
    assert base.lexicon.search("nobody", "pump", 5) == []


def test_warming_builds_every_project_until_told_to_stop(tmp_path):
    import threading

    rng = random.Random(7)
    db = Database(tmp_path / "kb.duckdb")
    base = KnowledgeBase(db)
    store(base, "a", "a.pdf", chunks(rng, 20))
    store(base, "b", "b.pdf", chunks(rng, 20))
    db.close()
    again = Database(tmp_path / "kb.duckdb")
    try:
        warm = KnowledgeBase(again).lexicon
        stop = threading.Event()
        stop.set()
        assert warm.warm(stop) == 0 and warm._segments == {}
        assert warm.warm(threading.Event()) == 2
        assert sorted(warm._segments) == ["a", "b"]
        assert all(s.size == 20 for segments in warm._segments.values() for s in segments)
    finally:
        again.close()
