-- The visual editor's settings (ComfyUI frontend's /api/settings), one row per user and
-- setting; values are the JSON the frontend sent.
CREATE TABLE IF NOT EXISTS editor_settings (
    user_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value JSON NOT NULL,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (user_id, key)
);
