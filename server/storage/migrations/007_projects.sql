-- Projects (chat, persona, agent...): the contract's Project object. The fields that are
-- free-form objects (agentic, persona_agent, persona_appearance, shared_api) and the
-- conversation links live in ``extra`` as JSON, shallow-merged on update.
CREATE TABLE IF NOT EXISTS projects (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    description VARCHAR NOT NULL DEFAULT '',
    instructions VARCHAR NOT NULL DEFAULT '',
    is_public BOOLEAN NOT NULL DEFAULT false,
    project_type VARCHAR NOT NULL DEFAULT 'chat',
    extra JSON NOT NULL DEFAULT '{}',
    created_at DOUBLE NOT NULL,
    updated_at DOUBLE NOT NULL
);
-- A project's documents (the knowledge base's sources), in upload order.
CREATE TABLE IF NOT EXISTS project_documents (
    project_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    source_type VARCHAR NOT NULL DEFAULT 'document',
    created_at DOUBLE NOT NULL,
    PRIMARY KEY (project_id, name)
);
