-- Provider sessions (completed logins) and pending multi-step runs.
-- `owner` is the user id for per-user providers and '' for global ones.
CREATE TABLE IF NOT EXISTS provider_sessions (
    owner      TEXT   NOT NULL,
    provider   TEXT   NOT NULL,
    data       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, provider)
);

CREATE TABLE IF NOT EXISTS pending_runs (
    owner      TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    flow_id    TEXT    NOT NULL,
    next_step  INTEGER NOT NULL,
    inputs     TEXT    NOT NULL,
    extracted  TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (owner, provider)
);
