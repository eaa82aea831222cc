"""Storage: one DuckDB file under $HOMEPILOT_HOME, numbered migrations, a repository per
domain. Only the server process opens it; writes are serialized (DuckDB rejects
concurrent updates)."""
