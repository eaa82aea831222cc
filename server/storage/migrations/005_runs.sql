-- Runs started over HTTP, so that a run the server was killed under is reported as
-- interrupted after a restart instead of vanishing.
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    graph VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    submitted DOUBLE NOT NULL,
    finished DOUBLE,
    error JSON
);
