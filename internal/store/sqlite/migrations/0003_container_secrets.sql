-- 0003_container_secrets: the extra environment (API keys) a container was
-- created with, kept so the reconciler can re-create a container that was
-- removed behind Berth's back, or change its plan, without losing them.
-- Plaintext for now (encryption at rest is a separate issue); never returned
-- by the API nor logged. Secrets go with their container record.

CREATE TABLE container_secrets (
    container_name TEXT NOT NULL REFERENCES containers (name) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    PRIMARY KEY (container_name, key)
);
