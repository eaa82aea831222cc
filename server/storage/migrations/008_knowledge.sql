-- Project knowledge bases: the chunks of each uploaded document with their MiniLM
-- embeddings. Searched two ways: an HNSW index (vss) on the embedding, and a BM25 index
-- (fts) on the text, which the store rebuilds after each change (fts indexes do not see
-- rows written after they were built).
CREATE SEQUENCE IF NOT EXISTS knowledge_chunk_ids START 1;
CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id BIGINT PRIMARY KEY DEFAULT nextval('knowledge_chunk_ids'),
    project_id VARCHAR NOT NULL,
    document VARCHAR NOT NULL,
    page INTEGER,              -- 1-based page (PDF) or sheet (XLSX); NULL where there are none
    section VARCHAR NOT NULL DEFAULT '',  -- how a citation names the place: "page 17"
    position INTEGER NOT NULL, -- the chunk's order in its document
    text VARCHAR NOT NULL,
    embedding FLOAT[384] NOT NULL
);
CREATE INDEX IF NOT EXISTS knowledge_chunks_hnsw ON knowledge_chunks USING HNSW (embedding)
    WITH (metric = 'cosine');
