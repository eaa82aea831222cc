CREATE TABLE IF NOT EXISTS edit_sessions (
    id VARCHAR PRIMARY KEY,
    active_image_url VARCHAR,
    original_image_url VARCHAR,
    created_at DOUBLE NOT NULL,
    updated_at DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS edit_versions (
    session_id VARCHAR NOT NULL,
    seq INTEGER NOT NULL,
    url VARCHAR NOT NULL,
    instruction VARCHAR NOT NULL,
    created_at DOUBLE NOT NULL,
    parent_url VARCHAR,
    settings JSON NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS model_preferences (
    mode VARCHAR PRIMARY KEY,
    model_id VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
