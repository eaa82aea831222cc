-- Persona sessions: one conversation each (its messages live in ``messages``, so the
-- message count is always counted there, never stored). Times are epoch seconds; the API
-- shows them as "YYYY-MM-DD HH:MM:SS".
CREATE TABLE IF NOT EXISTS persona_sessions (
    id VARCHAR PRIMARY KEY,
    project_id VARCHAR NOT NULL,
    conversation_id VARCHAR NOT NULL,
    mode VARCHAR NOT NULL DEFAULT 'text',
    title VARCHAR,
    started_at DOUBLE NOT NULL,
    ended_at DOUBLE,
    summary VARCHAR,
    user_id VARCHAR
);
-- A persona's long-term memory: the contract's Memory row plus the value's embedding
-- (JSON text: binding float lists in DuckDB is slow, and the vectors are only read back
-- per persona) and ``decayed_at``, the moment ``strength`` was last brought up to date. (project_id, category, key) is unique, enforced by the single writer
-- (DuckDB's unique indexes refuse some in-place updates).
CREATE SEQUENCE IF NOT EXISTS persona_memory_ids START 1;
CREATE TABLE IF NOT EXISTS persona_memory (
    id BIGINT PRIMARY KEY DEFAULT nextval('persona_memory_ids'),
    project_id VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    confidence DOUBLE NOT NULL DEFAULT 1.0,
    source_session VARCHAR,
    source_type VARCHAR NOT NULL DEFAULT 'user_statement',
    visibility VARCHAR NOT NULL DEFAULT 'private',
    created_at DOUBLE NOT NULL,
    updated_at DOUBLE NOT NULL,
    mem_type VARCHAR NOT NULL DEFAULT 'W',
    strength DOUBLE NOT NULL DEFAULT 1.0,
    importance DOUBLE NOT NULL DEFAULT 0.5,
    last_access_at DOUBLE NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_seen_at DOUBLE NOT NULL,
    is_pinned INTEGER NOT NULL DEFAULT 0,
    expires_at DOUBLE,
    user_id VARCHAR,
    embedding VARCHAR,
    decayed_at DOUBLE NOT NULL
);
