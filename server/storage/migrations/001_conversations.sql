CREATE SEQUENCE IF NOT EXISTS message_ids START 1;
CREATE TABLE IF NOT EXISTS messages (
    id BIGINT PRIMARY KEY DEFAULT nextval('message_ids'),
    conversation_id VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    content VARCHAR NOT NULL,
    media JSON,
    project_id VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, id);
