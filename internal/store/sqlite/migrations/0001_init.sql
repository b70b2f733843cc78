-- 0001_init: users, tokens, containers, lifecycle logs and the action ledger.
--
-- Kept close to portable SQL so the PostgreSQL store can follow the same
-- shape. Times are TEXT in a fixed-width UTC RFC 3339 form with nanoseconds
-- ("2006-01-02T15:04:05.000000000Z"), which sorts lexically in time order.

CREATE TABLE users (
    user_id    TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    plan       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES users (user_id) ON DELETE CASCADE, -- NULL for the admin token
    admin      BOOLEAN NOT NULL DEFAULT FALSE,
    name       TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);

CREATE INDEX tokens_user_id ON tokens (user_id);

CREATE TABLE containers (
    name                      TEXT PRIMARY KEY,
    user_id                   TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    idx                       INTEGER NOT NULL,
    runtime_id                TEXT NOT NULL DEFAULT '',
    plan                      TEXT NOT NULL DEFAULT '',
    image                     TEXT NOT NULL DEFAULT '',
    status                    TEXT NOT NULL DEFAULT '',
    health                    TEXT NOT NULL DEFAULT '',
    last_error                TEXT NOT NULL DEFAULT '',
    agent_port                INTEGER UNIQUE, -- NULL when no port is assigned
    agent_secret              TEXT NOT NULL DEFAULT '',
    memory_bytes              BIGINT NOT NULL DEFAULT 0,
    cpus                      DOUBLE PRECISION NOT NULL DEFAULT 0,
    pids_limit                BIGINT NOT NULL DEFAULT 0,
    actions_per_day           INTEGER NOT NULL DEFAULT 0,
    effective_memory_bytes    BIGINT NOT NULL DEFAULT 0,
    effective_cpus            DOUBLE PRECISION NOT NULL DEFAULT 0,
    effective_pids_limit      BIGINT NOT NULL DEFAULT 0,
    effective_actions_per_day INTEGER NOT NULL DEFAULT 0,
    created_at                TEXT NOT NULL,
    started_at                TEXT, -- NULL when never started
    updated_at                TEXT NOT NULL,
    UNIQUE (user_id, idx)
);

-- Logs and actions outlive their container record, so neither references
-- containers.
CREATE TABLE container_logs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    container_name TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    event          TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    time           TEXT NOT NULL
);

CREATE INDEX container_logs_container_id ON container_logs (container_name, id);

CREATE TABLE actions (
    container_name TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    user_id        TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL DEFAULT '',
    success        BOOLEAN NOT NULL,
    timestamp      TEXT NOT NULL,
    details        TEXT, -- JSON; NULL when absent
    PRIMARY KEY (container_name, seq)
);

CREATE INDEX actions_user_timestamp ON actions (user_id, timestamp);
CREATE INDEX actions_user_seq ON actions (user_id, seq);
