"""Personalities, persona sessions (reuse, resolve order, end with summary and memories)
and persona chat that remembers the previous session."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

FACT = "My name is Zoe and I am allergic to peanuts."
QUESTION = "What am I allergic to?"


def make_persona(client: TestClient, **agent) -> str:
    created = client.post("/projects", json={
        "name": "Ada", "project_type": "persona",
        "persona_agent": {"label": "Ada", "role": "a cheerful companion", **agent}})
    return created.json()["project"]["id"]


def table(client: TestClient, sql: str, params: list | None = None) -> list[tuple]:
    return client.app.state.homepilot.db.read(sql, params or [])


def open_session(client: TestClient, project_id: str, **fields) -> dict:
    answer = client.post("/persona/sessions", json={"project_id": project_id, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def last_prompt(client: TestClient) -> list[dict]:
    record = client.app.state.homepilot.runs.records()[-1]
    return record.handle.result(5).outputs["messages"]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_personalities_are_listed_by_label_and_defined_in_full(app):
    listed = app.get("/api/personalities").json()
    assert isinstance(listed, list) and len(listed) == 16
    assert [p["label"] for p in listed] == sorted((p["label"] for p in listed), key=str.lower)
    assert set(listed[0]) == {"id", "label", "category", "psychology_approach", "voice_style",
                              "response_style", "safety", "dynamics", "allowed_tools"}
    assert set(listed[0]["dynamics"]) == {"initiative", "depth", "emotional_base"}
    assert {p["id"] for p in app.get("/api/personalities",
                                     params={"category": "kids"}).json()} == \
        {"kids_story", "kids_trivia"}
    gated = {p["id"] for p in listed if p["safety"]["requires_adult_gate"]}
    assert gated == {"fan_service", "romantic", "sexy", "unhinged"}
    assert app.get("/api/personalities", params={"category": "pets"}).status_code == 422

    for summary in listed:
        full = app.get(f"/api/personalities/{summary['id']}").json()
        assert len(full["system_prompt"]) > 80 and full["label"] == summary["label"]
        assert full["opening"]["templates"] and full["silence"]["re_engage_templates"]
        assert full["follow_up"]["templates"] and full["key_techniques"]
        assert full["empathy_phrases"] and full["active_listening_cues"]
    therapist = app.get("/api/personalities/therapist").json()
    assert therapist["dynamics"]["mirror_emotion"] is True
    assert "crisis" in therapist["system_prompt"]
    assert therapist["engagement_hooks"][0]["trigger"] in {"emotional_peak", "on_answer"}
    missing = app.get("/api/personalities/nobody")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Personality 'nobody' not found"


def test_sessions_reuse_resolve_in_order_and_end_with_summary_and_memories(app):
    pid = make_persona(app)
    first = open_session(app, pid)
    session = first["session"]
    assert first["reused"] is False and "user_id" not in session
    assert session["mode"] == "text" and session["ended_at"] is None
    assert session["message_count"] == 0

    # Young and nearly empty: picked up again (switched to voice), not duplicated.
    again = open_session(app, pid, mode="voice")
    assert again["reused"] is True and again["session"]["id"] == session["id"]
    assert again["session"]["mode"] == "voice"
    assert table(app, "SELECT count(*) FROM persona_sessions") == [(1,)]

    # Three messages (counted in the messages table) make it a real session.
    state = app.app.state.homepilot
    state.conversations.add(session["conversation_id"], [
        ("user", FACT, None), ("assistant", "Nice to meet you, Zoe.", None),
        ("user", "I live in Lisbon.", None)], pid)
    got = app.get(f"/persona/sessions/{session['id']}").json()["session"]
    assert got["message_count"] == 3
    second = open_session(app, pid)
    assert second["reused"] is False
    third = open_session(app, pid, force_new=True)
    assert third["reused"] is False
    listed = app.get("/persona/sessions", params={"project_id": pid}).json()["sessions"]
    assert [s["id"] for s in listed] == [third["session"]["id"], second["session"]["id"],
                                         session["id"]]

    # Resolve: the active session when open, then the newest open, then the newest.
    state.projects.update(pid, {"active_session_id": session["id"]})
    resolved = app.post("/persona/sessions/resolve", json={"project_id": pid}).json()
    assert resolved["session"]["id"] == session["id"] and resolved["resolved_by"] == "active"

    ended = app.post(f"/persona/sessions/{session['id']}/end")
    assert ended.status_code == 200
    body = ended.json()
    assert body["ok"] is True and body["ended"] is True and body["session_id"] == session["id"]
    assert isinstance(body["summary"], str) and body["summary"]
    stored = table(app, "SELECT ended_at IS NOT NULL, summary FROM persona_sessions "
                        "WHERE id = ?", [session["id"]])
    assert stored == [(True, body["summary"])]
    memories = table(app, "SELECT value, source_type FROM persona_memory WHERE "
                          "source_session = ?", [session["id"]])
    assert memories and all(kind == "session_extraction" for _, kind in memories)
    assert {v for v, _ in memories} <= {f'The user said: "{FACT}"',
                                         'The user said: "I live in Lisbon."'}
    assert {m["id"] for m in body["memories"]} == {m["id"] for m in app.get(
        "/persona/memory", params={"project_id": pid}).json()["memories"]}
    again = app.post(f"/persona/sessions/{session['id']}/end").json()
    assert again == {"ok": True, "ended": False, "session_id": session["id"]}

    resolved = app.post("/persona/sessions/resolve", json={"project_id": pid}).json()
    assert resolved["session"]["id"] == third["session"]["id"]
    assert resolved["resolved_by"] == "newest_open"
    for other in (second, third):  # empty sessions end without a run
        assert app.post(f"/persona/sessions/{other['session']['id']}/end").json()["ended"]
    resolved = app.post("/persona/sessions/resolve", json={"project_id": pid,
                                                           "mode": "voice"}).json()
    assert resolved["session"]["id"] == third["session"]["id"]
    assert resolved["session"]["ended_at"] is not None and resolved["resolved_by"] == "newest"
    fresh = make_persona(app)
    created = app.post("/persona/sessions/resolve", json={"project_id": fresh,
                                                          "mode": "voice"}).json()
    assert created["resolved_by"] == "created" and created["session"]["mode"] == "voice"


def test_a_new_sessions_first_reply_is_told_what_the_last_session_learned(app):
    pid = make_persona(app, system_prompt="You are Ada, a warm friend. Keep answers short.")
    told = app.post("/chat", json={"message": FACT, "personalityId": f"persona:{pid}",
                                   "textTemperature": 0, "textMaxTokens": 16})
    assert told.status_code == 200, told.text
    session = app.get("/persona/sessions", params={"project_id": pid}).json()["sessions"]
    assert len(session) == 1 and session[0]["conversation_id"] == told.json()["conversation_id"]
    assert session[0]["message_count"] == 2
    assert app.post(f"/persona/sessions/{session[0]['id']}/end").json()["ended"] is True
    assert table(app, "SELECT count(*) FROM persona_memory WHERE project_id = ?", [pid]) != \
        [(0,)]

    new = open_session(app, pid, force_new=True)["session"]  # (a young one is reused)
    assert new["id"] != session[0]["id"]
    reply = app.post("/chat", json={"message": QUESTION,
                                    "conversation_id": new["conversation_id"],
                                    "personalityId": f"persona:{pid}", "textTemperature": 0,
                                    "textMaxTokens": 40})
    assert reply.status_code == 200
    # The reply itself uses the fact (greedy decoding; the question does not name it)...
    assert "peanut" in reply.json()["text"].lower(), reply.json()["text"]
    system = last_prompt(app)[0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are Ada, a cheerful companion.")
    assert "allergic to peanuts" in system["content"]  # the memory reached the prompt
    assert "Your last conversation with the user:" in system["content"]
    # The recalled memory was reinforced on reuse.
    assert table(app, "SELECT max(access_count) FROM persona_memory WHERE project_id = ?",
                 [pid]) >= [(1,)]
    # No earlier turns of the new session: the fact came from memory, not history.
    assert [m["role"] for m in last_prompt(app)] == ["system", "user"]
    # ...which a persona that never heard it does not come up with.
    stranger = make_persona(app, system_prompt="You are Ada, a warm friend. Keep answers "
                                               "short.")
    blank = app.post("/chat", json={"message": QUESTION, "personalityId": f"persona:{stranger}",
                                    "textTemperature": 0, "textMaxTokens": 40}).json()
    assert "peanut" not in blank["text"].lower(), blank["text"]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_a_persona_project_shows_its_sessions_and_deleting_it_removes_them(app):
    pid = make_persona(app)
    session = open_session(app, pid)["session"]
    app.post("/persona/memory", json={"project_id": pid, "key": "city", "value": "Lisbon"})
    shown = app.get(f"/projects/{pid}").json()["project"]
    assert [s["id"] for s in shown["sessions"]] == [session["id"]]
    assert shown["active_session"]["id"] == session["id"] and shown["memory_count"] == 1
    plain = app.post("/projects", json={"name": "Taxes"}).json()["project"]
    assert "sessions" not in app.get(f"/projects/{plain['id']}").json()["project"]

    assert app.delete(f"/projects/{pid}").status_code == 200
    assert table(app, "SELECT count(*) FROM persona_sessions") == [(0,)]
    assert table(app, "SELECT count(*) FROM persona_memory") == [(0,)]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_bad_session_requests_are_4xx_and_change_nothing(app):
    pid = make_persona(app)
    open_session(app, pid)
    plain = app.post("/projects", json={"name": "Taxes"}).json()["project"]["id"]
    before = table(app, "SELECT * FROM persona_sessions ORDER BY id")
    for body, status in (({}, 422), ({"project_id": pid, "mode": "shout"}, 422),
                         ({"project_id": "nope"}, 404), ({"project_id": ""}, 422)):
        assert app.post("/persona/sessions", json=body).status_code == status, body
    missing = app.post("/persona/sessions/resolve", json={})
    assert missing.status_code == 400 and missing.json()["code"] == "missing_project_id"
    assert app.post("/persona/sessions/resolve", json={"project_id": pid,
                                                       "mode": "shout"}).status_code == 400
    assert app.post("/persona/sessions/resolve", json={"project_id": "nope"}).status_code == 404
    unknown = app.get("/persona/sessions/nope")
    assert unknown.status_code == 404 and unknown.json()["code"] == "session_not_found"
    assert app.get("/persona/sessions").status_code == 422
    assert app.get("/persona/sessions", params={"project_id": pid,
                                                "limit": 0}).status_code == 422
    assert app.post("/persona/sessions/nope/end").json() == {"ok": True, "ended": False,
                                                             "session_id": "nope"}
    assert app.post("/chat", json={"message": "hi",
                                   "personalityId": "persona:nope"}).status_code == 404
    assert app.post("/chat", json={"message": "hi",
                                   "personalityId": f"persona:{plain}"}).status_code == 400
    assert table(app, "SELECT * FROM persona_sessions ORDER BY id") == before
    assert table(app, "SELECT count(*) FROM messages") == [(0,)]


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_the_openai_api_answers_as_a_persona_with_its_memories(app):
    pid = make_persona(app, system_prompt="You are Ada, a warm friend. Keep answers short.")
    saved = app.post("/persona/memory", json={"project_id": pid, "key": "allergy",
                                              "value": "The user is allergic to peanuts."})
    assert saved.status_code == 200
    listed = [m["id"] for m in app.get("/v1/models").json()["data"]]
    assert f"persona:{pid}" not in listed  # not shared yet
    app.put(f"/projects/{pid}", json={"shared_api": {"enabled": True, "alias": "ada"}})
    assert f"persona:{pid}" in [m["id"] for m in app.get("/v1/models").json()["data"]]

    answer = app.post("/v1/chat/completions", json={
        "model": f"persona:{pid}", "temperature": 0, "max_tokens": 40,
        "messages": [{"role": "user", "content": QUESTION}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == f"persona:{pid}" and body["object"] == "chat.completion"
    assert "peanut" in body["choices"][0]["message"]["content"].lower()
    system = last_prompt(app)[0]
    assert system["content"].startswith("You are Ada") and "allergic to peanuts" in \
        system["content"]
    # A stateless API turn opens no session and stores no messages.
    assert table(app, "SELECT count(*) FROM persona_sessions") == [(0,)]
    assert table(app, "SELECT count(*) FROM messages") == [(0,)]

    plain = app.post("/projects", json={"name": "Taxes"}).json()["project"]["id"]
    for model, status in ((f"persona:{plain}", 400), ("persona:nope", 404)):
        refused = app.post("/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == status
        assert refused.json()["error"]["param"] == "model"
