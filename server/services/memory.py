"""A persona's long-term memory engines: ``basic`` and ``adaptive`` (``off`` keeps nothing
new and injects nothing).

basic
    Each memory lives until its category's time to live (``TTL``) runs out, unless it is
    pinned; a category holds at most ``CAPS`` memories (the least recently seen unpinned
    ones go first); the same value said again (compared as normalised text) refreshes
    the existing row instead of adding one.

adaptive
    Each memory has a ``strength`` that halves every half-life of its tier (W working,
    S stable, P permanent; importance stretches the half-life) and is reinforced when
    the memory is said again or recalled into a chat. Reinforcement promotes W to S to P.
    Near-duplicates (cosine similarity of their MiniLM embeddings above ``SIMILAR``) are
    one memory: a new one reinforces the old, and maintenance consolidates those already
    stored. Memories whose strength fell under ``FORGET_BELOW`` are forgotten.

Every operation takes its time from ``clock``, so decay is tested with a clock that is
moved, never with sleeps.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, Field

from server.storage import memory as table
from server.storage.database import Database
from server.storage.memory import Record

Mode = Literal["basic", "adaptive", "off"]
Clock = Callable[[], float]
DAY = 86400.0

# basic: how long a memory of each category lives (None: until forgotten), and how many
# a category holds.
TTL: dict[str, float | None] = {"fact": None, "preference": None, "boundary": None,
                                "important_date": None, "milestone": 365 * DAY,
                                "emotion_pattern": 30 * DAY, "summary": 90 * DAY}
DEFAULT_TTL = 180 * DAY
CAPS: dict[str, int] = {"summary": 20, "emotion_pattern": 20}
DEFAULT_CAP = 50
# adaptive: half-life per tier, the similarity that makes two values one memory, and the
# strength under which a memory is forgotten.
HALF_LIFE = {"W": 3 * DAY, "S": 30 * DAY, "P": 365 * DAY}
SIMILAR = 0.9
FORGET_BELOW = 0.05
ADAPTIVE_CAP = 200
# How much one reinforcement closes the gap to full strength (recall is a lighter touch
# than being told again).
TOLD_AGAIN = 0.5
RECALLED = 0.2
# What a category matters, when the caller does not say.
IMPORTANCE = {"boundary": 0.9, "important_date": 0.8, "milestone": 0.7, "fact": 0.6,
              "preference": 0.6, "emotion_pattern": 0.5, "summary": 0.4}


class Candidate(BaseModel):
    """Something to remember (from the API or extracted from a session)."""

    category: str = Field("fact", min_length=1, max_length=40)
    key: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1, max_length=4000)
    confidence: float = Field(1.0, ge=0, le=1)
    source_type: str = Field("user_statement", max_length=40)
    source_session: str | None = None
    importance: float | None = Field(None, ge=0, le=1)
    pinned: bool | None = None


class Saved(BaseModel):
    record: Record
    deduplicated: bool = False


def normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def cosine(a: list[float] | None, b: list[float] | None) -> float:
    if not a or not b or len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def strength_at(record: Record, now: float) -> float:
    """The strength a memory has at ``now``: pinned ones never fade."""
    if record.is_pinned:
        return record.strength
    half_life = HALF_LIFE.get(record.mem_type, HALF_LIFE["W"]) * (1 + record.importance)
    elapsed = max(now - record.decayed_at, 0.0)
    return record.strength * 0.5 ** (elapsed / half_life)


def _tier(record: Record) -> str:
    if record.is_pinned or record.access_count >= 5 or record.importance >= 0.9:
        return "P"
    if record.access_count >= 2 or record.importance >= 0.7:
        return "S"
    return "W"


class MemoryEngine:
    """One persona's memory under one mode."""

    def __init__(self, db: Database, mode: Mode, clock: Clock = time.time) -> None:
        self.db = db
        self.mode = mode
        self.clock = clock

    # -- writing -------------------------------------------------------------------------

    def remember(self, project_id: str, candidate: Candidate,
                 vector: list[float] | None = None) -> Saved:
        with self.db.write() as cursor:
            return self.remember_in(cursor, project_id, candidate, vector)

    def remember_in(self, cursor: duckdb.DuckDBPyConnection, project_id: str,
                    candidate: Candidate, vector: list[float] | None) -> Saved:
        """Upsert on (project, category, key); a near-duplicate value in the category
        reinforces the row that has it; else a new row (then the category's cap)."""
        now = self.clock()
        rows = table.records(cursor, project_id, candidate.category)
        same_key = next((r for r in rows if r.key == candidate.key), None)
        if same_key is not None:
            changed = normalised(same_key.value) != normalised(candidate.value)
            same_key.value = candidate.value
            same_key.confidence = candidate.confidence
            same_key.source_type = candidate.source_type
            same_key.source_session = candidate.source_session or same_key.source_session
            if changed:
                same_key.embedding = vector or None
            self._touch(same_key, candidate, now)
            table.update(cursor, same_key)
            return Saved(record=same_key)
        twin = self._twin(rows, candidate.value, vector)
        if twin is not None:
            self._touch(twin, candidate, now)
            table.update(cursor, twin)
            return Saved(record=twin, deduplicated=True)
        record = Record(
            project_id=project_id, category=candidate.category, key=candidate.key,
            value=candidate.value, confidence=candidate.confidence,
            source_type=candidate.source_type, source_session=candidate.source_session,
            created_at=now, updated_at=now, last_access_at=now, last_seen_at=now,
            decayed_at=now, importance=self._importance(candidate),
            is_pinned=int(bool(candidate.pinned)), embedding=vector or None,
            expires_at=self._expiry(candidate.category, now))
        record.mem_type = _tier(record) if self.mode == "adaptive" else "S"
        record.id = table.insert(cursor, record)
        self._cap(cursor, project_id, candidate.category, now)
        return Saved(record=record)

    def _importance(self, candidate: Candidate) -> float:
        if candidate.importance is not None:
            return candidate.importance
        return IMPORTANCE.get(candidate.category, 0.5)

    def _expiry(self, category: str, now: float) -> float | None:
        if self.mode != "basic":
            return None
        ttl = TTL.get(category, DEFAULT_TTL)
        return now + ttl if ttl is not None else None

    def _twin(self, rows: list[Record], value: str,
              vector: list[float] | None) -> Record | None:
        """The stored memory saying the same thing, if any: the same words, or (adaptive)
        embeddings closer than ``SIMILAR``."""
        words = normalised(value)
        for row in rows:
            if normalised(row.value) == words:
                return row
        if self.mode != "adaptive" or not vector:
            return None
        scored = [(cosine(vector, row.embedding), row) for row in rows]
        best = max(scored, key=lambda pair: pair[0], default=(0.0, None))
        return best[1] if best[0] >= SIMILAR else None

    def _touch(self, record: Record, candidate: Candidate, now: float) -> None:
        """The memory was said again: refreshed (basic) or reinforced (adaptive)."""
        record.updated_at = record.last_seen_at = now
        record.access_count += 1
        if candidate.importance is not None:
            record.importance = max(record.importance, candidate.importance)
        if candidate.pinned is not None:
            record.is_pinned = int(candidate.pinned)
        if self.mode == "adaptive":
            self._reinforce(record, TOLD_AGAIN, now)
        else:
            record.expires_at = self._expiry(record.category, now)

    def _reinforce(self, record: Record, amount: float, now: float) -> None:
        current = strength_at(record, now)
        record.strength = min(1.0, current + (1.0 - current) * amount)
        record.decayed_at = now
        record.mem_type = _tier(record)

    def _cap(self, cursor: duckdb.DuckDBPyConnection, project_id: str, category: str,
             now: float) -> int:
        cap = ADAPTIVE_CAP if self.mode == "adaptive" else CAPS.get(category, DEFAULT_CAP)
        rows = [r for r in table.records(cursor, project_id, category) if not r.is_pinned]
        pinned = len(table.records(cursor, project_id, category)) - len(rows)
        excess = len(rows) + pinned - cap
        if excess <= 0:
            return 0
        # basic drops the least recently seen; adaptive the weakest.
        if self.mode == "adaptive":
            rows.sort(key=lambda r: (strength_at(r, now), r.last_seen_at))
        else:
            rows.sort(key=lambda r: (r.last_seen_at, r.id))
        return table.delete(cursor, [r.id for r in rows[:excess]])

    def pin(self, project_id: str, category: str, key: str, pinned: bool) -> Record | None:
        with self.db.write() as cursor:
            found = next((r for r in table.records(cursor, project_id, category)
                          if r.key == key), None)
            if found is None:
                return None
            now = self.clock()
            # Bring the strength up to date first: pinning stops the clock, not rewinds it.
            found.strength, found.decayed_at = strength_at(found, now), now
            found.is_pinned = int(pinned)
            found.mem_type = _tier(found) if self.mode == "adaptive" else found.mem_type
            found.updated_at = now
            table.update(cursor, found)
            return found

    def forget(self, project_id: str, category: str, key: str) -> bool:
        with self.db.write() as cursor:
            ids = [r.id for r in table.records(cursor, project_id, category) if r.key == key]
            return table.delete(cursor, ids) > 0

    def forget_category(self, project_id: str, category: str) -> int:
        with self.db.write() as cursor:
            return table.delete(cursor, [r.id for r in
                                         table.records(cursor, project_id, category)])

    def forget_all(self, project_id: str) -> int:
        with self.db.write() as cursor:
            return table.delete(cursor, [r.id for r in table.records(cursor, project_id)])

    # -- upkeep --------------------------------------------------------------------------

    def maintain(self, project_id: str) -> dict[str, int]:
        """basic: drop expired memories and enforce the caps. adaptive: bring strengths
        up to date, forget the faded, consolidate near-duplicates, re-tier."""
        now = self.clock()
        report = {"expired": 0, "decayed": 0, "forgotten": 0, "consolidated": 0,
                  "capped": 0}
        with self.db.write() as cursor:
            rows = table.records(cursor, project_id)
            expired = [r.id for r in rows if not r.is_pinned and r.expires_at is not None
                       and r.expires_at <= now]
            report["expired"] = table.delete(cursor, expired)
            rows = [r for r in rows if r.id not in set(expired)]
            if self.mode == "adaptive":
                report.update(self._decay(cursor, rows, now))
            for category in sorted({r.category for r in rows}):
                report["capped"] += self._cap(cursor, project_id, category, now)
        return report

    def _decay(self, cursor: duckdb.DuckDBPyConnection, rows: list[Record],
               now: float) -> dict[str, int]:
        faded, kept = [], []
        for row in rows:
            current = strength_at(row, now)
            if current < FORGET_BELOW and not row.is_pinned:
                faded.append(row.id)
                continue
            if current != row.strength or row.decayed_at != now:
                row.strength, row.decayed_at = current, now
                row.mem_type = _tier(row)
                kept.append(row)
        merged = self._consolidate([r for r in rows if r.id not in set(faded)])
        gone = set(faded) | {loser.id for _, loser in merged}
        for winner, _ in merged:
            if winner not in kept:
                kept.append(winner)
        for row in kept:
            if row.id not in gone:
                table.update(cursor, row)
        table.delete(cursor, sorted(gone))
        return {"decayed": len(kept), "forgotten": len(faded), "consolidated": len(merged)}

    def _consolidate(self, rows: list[Record]) -> list[tuple[Record, Record]]:
        """(kept, merged into it) for each pair of near-duplicates in a category; the kept
        one takes the other's reinforcement."""
        merged: list[tuple[Record, Record]] = []
        alive = sorted(rows, key=lambda r: (-r.is_pinned, -r.importance, -r.strength, r.id))
        gone: set[int] = set()
        for i, keep in enumerate(alive):
            if keep.id in gone:
                continue
            for other in alive[i + 1:]:
                if other.id in gone or other.category != keep.category:
                    continue
                if normalised(other.value) == normalised(keep.value) or \
                        cosine(keep.embedding, other.embedding) >= SIMILAR:
                    keep.access_count += other.access_count + 1
                    keep.strength = max(keep.strength, other.strength)
                    keep.importance = max(keep.importance, other.importance)
                    keep.confidence = max(keep.confidence, other.confidence)
                    keep.last_seen_at = max(keep.last_seen_at, other.last_seen_at)
                    keep.mem_type = _tier(keep)
                    gone.add(other.id)
                    merged.append((keep, other))
        return merged

    # -- reading -------------------------------------------------------------------------

    def recall(self, project_id: str, query: list[float] | None, limit: int = 6,
               touch: bool = True) -> list[Record]:
        """The memories most worth bringing into a reply: similar to the query, important,
        strong. Recalled memories are reinforced (adaptive) or marked read (basic)."""
        if self.mode == "off":
            return []
        now = self.clock()
        live = [r for r in table.records(self.db, project_id)
                if (r.expires_at is None or r.expires_at > now)
                and strength_at(r, now) >= FORGET_BELOW]
        scored = []
        # A persona that remembers little is told all of it; past the budget, memories
        # unrelated to what is being said (and not vital) stay out.
        crowded = len(live) > limit
        for row in live:
            similarity = cosine(query, row.embedding) if query else 0.0
            if crowded and query and similarity < 0.15 and not row.is_pinned \
                    and row.importance < 0.85:
                continue
            score = 0.65 * similarity + 0.2 * row.importance + \
                0.15 * strength_at(row, now) + (0.1 if row.is_pinned else 0.0)
            scored.append((score, row))
        chosen = [row for _, row in sorted(scored, key=lambda p: (-p[0], p[1].id))[:limit]]
        if touch and chosen:
            with self.db.write() as cursor:
                for row in chosen:
                    row.last_access_at = now
                    row.access_count += 1
                    if self.mode == "adaptive":
                        self._reinforce(row, RECALLED, now)
                    table.update(cursor, row)
        return chosen

    def stats(self, project_id: str) -> dict[str, Any]:
        now = self.clock()
        rows = table.records(self.db, project_id)
        by_category: dict[str, int] = {}
        by_tier = {"W": 0, "S": 0, "P": 0}
        for row in rows:
            by_category[row.category] = by_category.get(row.category, 0) + 1
            by_tier[row.mem_type] = by_tier.get(row.mem_type, 0) + 1
        strengths = [strength_at(r, now) for r in rows]
        return {"memory_mode": self.mode, "total": len(rows), "by_category": by_category,
                "by_tier": by_tier, "pinned": sum(r.is_pinned for r in rows),
                "expired": sum(1 for r in rows if r.expires_at is not None
                               and r.expires_at <= now),
                "average_strength": round(sum(strengths) / len(strengths), 4)
                if strengths else 0.0,
                "fading": sum(1 for s in strengths if s < 0.2)}
