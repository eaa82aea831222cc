-- BM25 over knowledge chunks now comes from postings held in memory (server/storage/
-- lexicon.py), built from the chunks' rows; fts's index of them is no longer kept.
DROP SCHEMA IF EXISTS fts_main_knowledge_chunks CASCADE;
