"""BM25 over a project's chunks, from an inverted index kept in memory.

DuckDB's fts extension scores a query by joining its term table (6M rows at 100k chunks)
and must rebuild its whole index after every change; both cost tens of milliseconds to
seconds. Here each project's postings are numpy arrays, one *segment* per stored
document (so an upload or delete touches only that document) until a project has many,
when the next search merges them into one. The rows in DuckDB stay the truth: segments
are built from them with the same SQL tokenizer the queries use, and a server restart
just builds them again on a project's first search.

Scoring is Okapi BM25 (k1 1.2, b 0.75) exactly as fts scores (its idf takes a base-10
log), with its tokens and stopwords: text lowercased, accents stripped, split on anything
but a-z and 0-9 (digits are kept: part numbers and error codes are looked up by their
exact text), English stopwords left out, the Porter stem of each word.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.storage.database import Database

K1, B = 1.2, 0.75
MAX_SEGMENTS = 16  # beyond this many documents' segments, one merged segment is faster
STOPWORDS = frozenset(
    line.strip() for line in (Path(__file__).parent.parent / "data" / "stopwords.txt")
    .read_text().splitlines() if line.strip() and not line.startswith("#"))
assert all(re.fullmatch("[a-z0-9]+", w) for w in STOPWORDS)  # safe to write into SQL
# Written into the SQL rather than bound: DuckDB takes ~60 ms to bind a 500-item list.
_STOPLIST = "[" + ", ".join(f"'{w}'" for w in sorted(STOPWORDS)) + "]"


def _words(source: str) -> str:
    """SQL giving ``(id, w)``: each word of ``source`` (an SQL relation with ``id`` and
    ``text``), lowercased and without accents."""
    return ("SELECT id, w FROM (SELECT id, unnest(regexp_split_to_array(lower(strip_accents("
            f"text)), '[^a-z0-9]+')) AS w FROM ({source})) WHERE w <> ''")


@dataclass(frozen=True)
class Segment:
    """The postings of some chunks: ``chunks`` (their ids, sorted) with ``lengths``
    (tokens kept); for each term, a slice of ``rows`` (positions into ``chunks``) and
    ``counts`` (the term's frequency in that chunk)."""

    documents: frozenset[str]
    chunks: np.ndarray
    lengths: np.ndarray
    terms: dict[str, slice]
    rows: np.ndarray
    counts: np.ndarray

    @property
    def size(self) -> int:
        return len(self.chunks)

    def df(self, term: str) -> int:
        found = self.terms.get(term)
        return 0 if found is None else found.stop - found.start


class Lexicon:
    """Per-project BM25 segments for one database, shared by every ``KnowledgeBase`` on it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        # Replaced, never changed in place: a search scores the list it was handed.
        self._segments: dict[str, list[Segment]] = {}

    # -- keeping up with the rows --------------------------------------------------------

    def changed(self, project_id: str, document: str) -> None:
        """A document of the project was stored, replaced or removed (committed). Its
        segment is built again from the rows at once (a document is small); a document
        inside a merged segment sends the project back to a full build."""
        with self._lock:
            segments = self._segments.get(project_id)
            if segments is None:
                return
            if any(document in s.documents and len(s.documents) > 1 for s in segments):
                del self._segments[project_id]  # inside a merged segment: build again
                return
            kept = [s for s in segments if document not in s.documents]
            fresh = self._build(project_id, document)
            self._segments[project_id] = kept + ([fresh] if fresh.size else [])

    def forget(self, project_id: str) -> None:
        """The project is gone."""
        with self._lock:
            self._segments.pop(project_id, None)

    def warm(self, stop: threading.Event) -> int:
        """Build every project's postings ahead of its first search (the server does
        this in the background at start: 100k chunks take seconds), the most recently
        changed project first; returns how many were built before ``stop`` was set."""
        built = 0
        for (project_id,) in self.db.read(
                "SELECT c.project_id FROM knowledge_chunks AS c LEFT JOIN projects AS p ON "
                "p.id = c.project_id GROUP BY c.project_id ORDER BY max(p.updated_at) DESC "
                "NULLS LAST, c.project_id"):
            if stop.is_set():
                break
            self._ready(project_id)
            built += 1
        return built

    # -- searching -----------------------------------------------------------------------

    def search(self, project_id: str, text: str, k: int) -> list[tuple[int, float]]:
        """The project's ``k`` best chunks for ``text`` as ``(id, score)``, best first
        (ties by id)."""
        terms = self.terms(text)
        if not terms or k <= 0:
            return []
        segments = self._ready(project_id)
        total = sum(s.size for s in segments)
        if total == 0:
            return []
        average = sum(float(s.lengths.sum()) for s in segments) / total
        idf = {}
        for term in terms:
            df = sum(s.df(term) for s in segments)
            if df:
                idf[term] = math.log10((total - df + 0.5) / (df + 0.5) + 1)
        ids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for segment in segments:
            best = _score(segment, idf, average, k)
            if best is not None:
                ids.append(best[0])
                scores.append(best[1])
        if not ids:
            return []
        every_id, every_score = np.concatenate(ids), np.concatenate(scores)
        order = np.lexsort((every_id, -every_score))[:k]
        return [(int(every_id[i]), float(every_score[i])) for i in order]

    def terms(self, text: str) -> list[str]:
        """The distinct terms of a query, as the index holds them."""
        if not text.strip():
            return []
        stem = "stem(w, 'porter')" if self.db.fts else "w"
        words = _words("SELECT 0 AS id, $text AS text")
        rows = self.db.read(f"SELECT DISTINCT w, {stem} FROM ({words})", {"text": text})
        return sorted({t for w, t in rows if w not in STOPWORDS})

    def _ready(self, project_id: str) -> list[Segment]:
        with self._lock:
            segments = self._segments.get(project_id)
            if segments is not None and len(segments) <= MAX_SEGMENTS:
                return segments
            # First search since a restart, or too many documents' segments: one
            # segment for the whole project. Built under the lock, so concurrent
            # searches of a cold project wait for one build rather than each doing it.
            merged = self._build(project_id, None)
            self._segments[project_id] = [merged] if merged.size else []
            return self._segments[project_id]

    def _build(self, project_id: str, document: str | None) -> Segment:
        """A segment from the rows: one document's, or (None) the whole project's.

        Words are counted per chunk first and only the distinct words are stemmed and
        checked against the stopwords (100k chunks hold 6M words but a few thousand
        distinct ones); the postings come back unsorted as integer term codes and numpy
        orders them (sorting 6M rows by a string key in SQL costs seconds)."""
        where = "project_id = $project" + ("" if document is None else
                                           " AND document = $document")
        params: dict[str, Any] = {"project": project_id}
        if document is not None:
            params["document"] = document
        source = f"SELECT id, text FROM knowledge_chunks WHERE {where}"
        stem = "stem(w, 'porter')" if self.db.fts else "w"  # no fts extension: whole words
        cursor = self.db.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION")  # one snapshot for every read below
            cursor.execute("CREATE TEMP TABLE counts AS SELECT w, id, count(*)::INTEGER AS "
                           f"tf FROM ({_words(source)}) GROUP BY w, id", params)
            cursor.execute(f"CREATE TEMP TABLE vocabulary AS SELECT w, {stem} AS t FROM "
                           "(SELECT DISTINCT w FROM counts) WHERE w NOT IN (SELECT unnest("
                           f"{_STOPLIST}))")
            terms = [row[0] for row in cursor.execute(
                "SELECT DISTINCT t FROM vocabulary ORDER BY t").fetchall()]
            postings = cursor.execute(
                "SELECT code, id, sum(tf)::INTEGER AS tf FROM counts JOIN (SELECT w, "
                "dense_rank() OVER (ORDER BY t)::INTEGER - 1 AS code FROM vocabulary) "
                "USING (w) GROUP BY code, id").fetchnumpy()
            ids = np.asarray(cursor.execute(f"SELECT id FROM ({source}) ORDER BY id",
                                            params).fetchnumpy()["id"], dtype=np.int64)
            documents = [row[0] for row in cursor.execute(
                f"SELECT DISTINCT document FROM knowledge_chunks WHERE {where}",
                params).fetchall()]
            cursor.execute("ROLLBACK")  # the temporary tables go with it
        finally:
            cursor.close()
        codes = np.asarray(postings["code"], dtype=np.int64)
        order = np.lexsort((np.asarray(postings["id"]), codes))
        codes = codes[order]
        rows = np.searchsorted(ids, np.asarray(postings["id"], dtype=np.int64)[order])
        counts = np.asarray(postings["tf"], dtype=np.float32)[order]
        edges = np.searchsorted(codes, np.arange(len(terms) + 1))
        return Segment(
            documents=frozenset(documents), chunks=ids,
            lengths=np.bincount(rows, weights=counts, minlength=len(ids)).astype(np.float32),
            terms={t: slice(int(edges[n]), int(edges[n + 1])) for n, t in enumerate(terms)},
            rows=rows, counts=counts)


def _score(segment: Segment, idf: dict[str, float], average: float,
           k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The segment's best ``k`` chunk ids and their BM25 scores, or None if no term is
    in it."""
    totals: np.ndarray | None = None
    norm = K1 * (1 - B + B * segment.lengths / average)
    for term, weight in idf.items():
        where = segment.terms.get(term)
        if where is None:
            continue
        rows, tf = segment.rows[where], segment.counts[where]
        part = np.bincount(rows, weights=weight * tf * (K1 + 1) / (tf + norm[rows]),
                           minlength=segment.size)
        totals = part if totals is None else totals + part
    if totals is None:
        return None
    hit = np.flatnonzero(totals)
    if len(hit) > k:
        # Every chunk scoring at least the k-th best: ties at the edge are then broken
        # by id, the same way whichever segment they are in.
        kth = -np.partition(-totals[hit], k - 1)[k - 1]
        hit = hit[totals[hit] >= kth]
    return segment.chunks[hit], totals[hit]
