-- 0004_ops: webhook registrations and their delivery attempts; metered
-- usage per user, UTC day, plan and runtime, and how far each running
-- container has been metered.

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES users (user_id) ON DELETE CASCADE, -- NULL for an admin webhook
    url        TEXT NOT NULL,
    events     TEXT NOT NULL DEFAULT '', -- comma-separated; empty for all
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX webhooks_user_id ON webhooks (user_id);

CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id  TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,
    event       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    status_code INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT NOT NULL,
    error       TEXT NOT NULL DEFAULT '',
    duration_ns BIGINT NOT NULL DEFAULT 0,
    time        TEXT NOT NULL
);

CREATE INDEX webhook_deliveries_webhook_id ON webhook_deliveries (webhook_id, id);

-- Usage outlives users and containers: billing needs it after a deletion.
CREATE TABLE usage_daily (
    user_id         TEXT NOT NULL,
    day             TEXT NOT NULL, -- YYYY-MM-DD, UTC
    plan            TEXT NOT NULL,
    runtime         TEXT NOT NULL,
    running_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    peak_memory     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, plan, runtime)
);

CREATE INDEX usage_daily_day ON usage_daily (day);

CREATE TABLE usage_cursors (
    container_name TEXT PRIMARY KEY,
    started_at     TEXT NOT NULL, -- the engine's start time of the run being metered
    until          TEXT NOT NULL  -- metered up to here
);
