-- A persona's avatar versions: every picture committed as its avatar (a commit, an
-- edit, a generated set), newest the highest ``version``. The pictures themselves are
-- files under projects/<id>/persona/appearance/ (``filename``/``thumb_filename`` are
-- store-relative paths); which one is current is the project's
-- persona_appearance.selected_filename, so a revert changes only the project row.
-- (project_id, version) is unique, kept so by the single writer (DuckDB's unique indexes
-- refuse some in-place updates).
CREATE TABLE IF NOT EXISTS persona_avatar_versions (
    project_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    filename VARCHAR NOT NULL,
    thumb_filename VARCHAR NOT NULL,
    origin VARCHAR NOT NULL,
    source_url VARCHAR,
    created_at DOUBLE NOT NULL
);
