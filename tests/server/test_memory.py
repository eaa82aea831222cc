"""A persona's long-term memory: the API (upsert, dedupe, reinforce, pin, forget, stats)
and the engines (basic TTL and caps, adaptive decay, consolidation) on a moved clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from server.services import persona
from server.services.memory import DAY, Candidate, MemoryEngine, strength_at
from server.storage import memory as table


def make_persona(client: TestClient, memory_mode: str = "adaptive") -> str:
    created = client.post("/projects", json={
        "name": "Ada", "project_type": "persona",
        "persona_agent": {"label": "Ada", "role": "a cheerful companion",
                          "memory_mode": memory_mode}})
    assert created.status_code == 201
    return created.json()["project"]["id"]


def rows(client: TestClient, project_id: str) -> list[tuple]:
    return client.app.state.homepilot.db.read(
        "SELECT id, category, key, value, access_count, is_pinned, mem_type FROM "
        "persona_memory WHERE project_id = ? ORDER BY id", [project_id])


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine_for(app, clock) -> Callable[..., MemoryEngine]:
    def make(mode: str) -> MemoryEngine:
        return MemoryEngine(app.app.state.homepilot.db, mode, clock)  # type: ignore[arg-type]
    return make


@pytest.mark.parametrize("executor", ["local", "ray"], indirect=True)
def test_upsert_dedupe_reinforce_pin_and_forget_through_the_api(app):
    pid = make_persona(app)
    saved = app.post("/persona/memory", json={"project_id": pid, "key": "pet",
                                             "value": "The user has a cat named Miso"})
    assert saved.status_code == 200
    memory = saved.json()["memory"]
    assert memory["key"] == "pet" and memory["category"] == "fact"
    assert "deduplicated" not in memory and memory["mem_type"] == "W"
    assert rows(app, pid) == [(memory["id"], "fact", "pet", "The user has a cat named Miso",
                               0, 0, "W")]

    # Upsert: the same (category, key) replaces the value in the same row.
    app.post("/persona/memory", json={"project_id": pid, "key": "pet",
                                      "value": "The user has a cat named Miso and a dog"})
    assert rows(app, pid) == [(memory["id"], "fact", "pet",
                               "The user has a cat named Miso and a dog", 1, 0, "W")]

    # Near-duplicate value under another key: the existing row is reinforced, no new row.
    again = app.post("/persona/memory", json={
        "project_id": pid, "key": "animals",
        "value": "The user has a dog and a cat named Miso."}).json()["memory"]
    assert again["deduplicated"] is True and again["id"] == memory["id"]
    assert rows(app, pid) == [(memory["id"], "fact", "pet",
                               "The user has a cat named Miso and a dog", 2, 0, "S")]

    # A different fact is a new row; another category keeps its own keys.
    app.post("/persona/memory", json={"project_id": pid, "key": "drink",
                                      "category": "preference",
                                      "value": "The user loves green tea"})
    assert [r[2] for r in rows(app, pid)] == ["pet", "drink"]
    listed = app.get("/persona/memory", params={"project_id": pid,
                                                "category": "preference"}).json()
    assert listed["count"] == 1 and listed["memories"][0]["value"] == "The user loves green tea"
    assert set(listed["memories"][0]) >= {"id", "project_id", "category", "key", "value",
                                          "confidence", "source_session", "source_type",
                                          "visibility", "created_at", "updated_at", "mem_type",
                                          "strength", "importance", "last_access_at",
                                          "access_count", "last_seen_at", "is_pinned",
                                          "expires_at", "user_id"}

    pinned = app.post("/persona/memory/pin", json={"project_id": pid, "category": "preference",
                                                   "key": "drink"}).json()["memory"]
    assert pinned["is_pinned"] == 1 and pinned["mem_type"] == "P"
    stats = app.get("/persona/memory/stats", params={"project_id": pid}).json()
    assert stats["total"] == 2 and stats["pinned"] == 1 and stats["memory_mode"] == "adaptive"

    gone = app.request("DELETE", "/persona/memory", json={"project_id": pid,
                                                          "category": "fact", "key": "pet"})
    assert gone.json() == {"ok": True, "deleted": True}
    assert [r[2] for r in rows(app, pid)] == ["drink"]
    everything = app.request("DELETE", "/persona/memory", json={"project_id": pid}).json()
    assert everything == {"ok": True, "forgotten": 1, "message": "Forgot 1 memories"}
    assert rows(app, pid) == []


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_bad_memory_requests_are_4xx_and_change_nothing(app):
    pid = make_persona(app)
    app.post("/persona/memory", json={"project_id": pid, "key": "city", "value": "Lisbon"})
    before = app.app.state.homepilot.db.read("SELECT * FROM persona_memory")
    missing = app.post("/persona/memory", json={"project_id": pid, "value": "x"})
    assert missing.status_code == 400
    assert missing.json()["code"] == "missing_field"
    assert missing.json()["message"] == "Missing required field: 'key'"
    for body, status in (({"key": "a", "value": "b"}, 400),
                         ({"project_id": pid, "key": "a", "value": "b", "confidence": 7}, 400),
                         ({"project_id": "nope", "key": "a", "value": "b"}, 404)):
        assert app.post("/persona/memory", json=body).status_code == status, body
    refused = app.request("DELETE", "/persona/memory", json={"project_id": pid, "key": "city"})
    assert refused.status_code == 400  # a key without its category never forgets all
    assert app.request("DELETE", "/persona/memory", json={}).json()["code"] == \
        "missing_project_id"
    assert app.get("/persona/memory").status_code == 422
    assert app.get("/persona/memory", params={"project_id": "nope"}).status_code == 404
    assert app.post("/persona/memory/pin", json={"project_id": pid, "category": "fact",
                                                 "key": "nope"}).status_code == 404
    assert app.app.state.homepilot.db.read("SELECT * FROM persona_memory") == before


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_adaptive_strength_decays_with_time_and_recall_reinforces(app, engine_for, clock):
    pid = make_persona(app)
    memory = engine_for("adaptive")
    state = app.app.state.homepilot
    vectors = persona.embed(state, ["The user is allergic to peanuts",
                                    "The user's sister is called Ana"])
    memory.remember(pid, Candidate(key="allergy", value="The user is allergic to peanuts",
                                   importance=0.5), vectors[0])
    memory.remember(pid, Candidate(key="sister", value="The user's sister is called Ana",
                                   importance=0.5), vectors[1])
    before = {r.key: r for r in table.records(state.db, pid)}
    assert before["allergy"].strength == 1.0

    clock.now += 4.5 * DAY  # one half-life of a W memory at importance 0.5
    report = memory.maintain(pid)
    after = {r.key: r for r in table.records(state.db, pid)}
    assert report["decayed"] == 2 and report["forgotten"] == 0
    assert after["allergy"].strength == pytest.approx(0.5, abs=1e-6)
    assert after["allergy"].decayed_at == clock.now

    # Recalling a memory into a chat reinforces it; the other keeps fading.
    query = persona.embed(state, ["Can I eat peanut butter?"])[0]
    recalled = memory.recall(pid, query, limit=1)
    assert [r.key for r in recalled] == ["allergy"]
    touched = {r.key: r for r in table.records(state.db, pid)}
    assert touched["allergy"].strength == pytest.approx(0.5 + 0.5 * 0.2)
    assert touched["allergy"].access_count == 1 and touched["allergy"].last_access_at == clock.now
    assert touched["sister"] == after["sister"]

    # Long enough, an unpinned memory fades out and is forgotten; a pinned one stays.
    memory.pin(pid, "fact", "sister", True)
    clock.now += 60 * DAY
    assert strength_at(table.records(state.db, pid)[0], clock.now) < 0.05
    report = memory.maintain(pid)
    assert report["forgotten"] == 1
    assert [(r.key, r.is_pinned) for r in table.records(state.db, pid)] == [("sister", 1)]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_adaptive_consolidates_near_duplicates_and_promotes_tiers(app, engine_for, clock):
    pid = make_persona(app)
    memory = engine_for("adaptive")
    db = app.app.state.homepilot.db
    texts = ["The user lives in Lisbon", "The user lives in Lisbon, Portugal",
             "The user plays the violin"]
    vectors = persona.embed(app.app.state.homepilot, texts)
    # Stored by another engine (basic compares words only), as an import would.
    basic = engine_for("basic")
    for key, text, vector in zip(("city", "home", "hobby"), texts, vectors, strict=True):
        basic.remember(pid, Candidate(key=key, value=text), vector)
    assert [r.key for r in table.records(db, pid)] == ["city", "home", "hobby"]

    report = memory.maintain(pid)
    kept = table.records(db, pid)
    assert report["consolidated"] == 1
    assert [r.key for r in kept] == ["city", "hobby"]
    assert kept[0].access_count == 1  # the merged twin's mention counts

    for _ in range(4):  # told again and again: W -> S -> P
        memory.remember(pid, Candidate(key="hobby", value="The user plays the violin"),
                        vectors[2])
    hobby = next(r for r in table.records(db, pid) if r.key == "hobby")
    assert hobby.access_count == 4 and hobby.mem_type == "S"
    memory.remember(pid, Candidate(key="hobby", value="The user plays the violin"), vectors[2])
    assert next(r for r in table.records(db, pid) if r.key == "hobby").mem_type == "P"


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_basic_expires_by_category_caps_and_keeps_pinned(app, engine_for, clock):
    pid = make_persona(app, "basic")
    memory = engine_for("basic")
    db = app.app.state.homepilot.db
    memory.remember(pid, Candidate(category="emotion_pattern", key="mood",
                                   value="The user feels stressed on Mondays"))
    memory.remember(pid, Candidate(category="emotion_pattern", key="calm",
                                   value="Walks calm the user down", pinned=True))
    memory.remember(pid, Candidate(key="name", value="The user is called Zoe"))
    # The same words again refresh the row instead of adding one.
    saved = memory.remember(pid, Candidate(key="first_name", value="the user is called ZOE!"))
    assert saved.deduplicated and saved.record.key == "name"
    assert len(table.records(db, pid)) == 3

    clock.now += 31 * DAY  # emotion patterns live 30 days; facts until forgotten
    assert memory.maintain(pid)["expired"] == 1
    assert sorted(r.key for r in table.records(db, pid)) == ["calm", "name"]

    for i in range(22):  # summaries: at most 20, the least recently seen go first
        clock.now += 1
        memory.remember(pid, Candidate(category="summary", key=f"s{i}", value=f"Session {i}"))
    kept = [r.key for r in table.records(db, pid, "summary")]
    assert kept == [f"s{i}" for i in range(2, 22)]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_off_mode_recalls_nothing_and_stores_no_vectors(app):
    pid = make_persona(app, "off")
    app.post("/persona/memory", json={"project_id": pid, "key": "city", "value": "Lisbon"})
    stored = app.app.state.homepilot.db.read(
        "SELECT embedding FROM persona_memory WHERE project_id = ?", [pid])
    assert stored == [(None,)]
    memory = persona.engine(app.app.state.homepilot,
                            app.app.state.homepilot.projects.get(pid))
    assert memory.mode == "off" and memory.recall(pid, None) == []
