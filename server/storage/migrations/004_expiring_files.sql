-- Files kept only for a while: the media of incognito chats, which nothing else records.
CREATE TABLE IF NOT EXISTS expiring_files (
    file_id VARCHAR PRIMARY KEY,
    expires_at DOUBLE NOT NULL
);
