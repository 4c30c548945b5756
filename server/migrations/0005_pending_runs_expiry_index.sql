-- The sweep deletes expired pending runs every minute (`upkeep`), and PostgreSQL counts the
-- live ones there: both by `expires_at`, which an index answers without reading the table.
CREATE INDEX IF NOT EXISTS pending_runs_expires_at ON pending_runs (expires_at);
