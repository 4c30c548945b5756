-- Failed login attempts by key (a user and provider, or a client address), counted in windows:
-- shared by every instance on PostgreSQL. `store_probe` is a counter /readyz increments to prove
-- the database takes writes.
CREATE TABLE IF NOT EXISTS login_failures (
    key          TEXT    NOT NULL PRIMARY KEY,
    window_start BIGINT  NOT NULL,
    failures     INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS store_probe (
    id INTEGER NOT NULL PRIMARY KEY,
    at BIGINT  NOT NULL
);
