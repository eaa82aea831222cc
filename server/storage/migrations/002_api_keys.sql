CREATE TABLE IF NOT EXISTS api_keys (
    provider VARCHAR PRIMARY KEY,
    ciphertext BLOB NOT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
