-- 0002_accounts: password logins, browser sessions, one-time password links
-- and a public id for each API token (to list and revoke personal tokens).
-- PostgreSQL counterpart of internal/store/sqlite/migrations/0002_accounts.sql:
-- same tables, columns, constraints and indexes; times are fixed-width UTC
-- text as in 0001, sorted and compared keys use COLLATE "C".

ALTER TABLE tokens ADD COLUMN id TEXT COLLATE "C";
UPDATE tokens SET id = substr(hash, 1, 16) WHERE id IS NULL;
CREATE UNIQUE INDEX tokens_id ON tokens (id);

CREATE TABLE credentials (
    user_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE, -- lower(email): logins match case-insensitively
    password_hash TEXT NOT NULL,
    updated_at    TEXT COLLATE "C" NOT NULL
);

CREATE TABLE sessions (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT COLLATE "C" REFERENCES users (user_id) ON DELETE CASCADE, -- NULL for an admin session
    admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE password_links (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);

CREATE INDEX password_links_expires_at ON password_links (expires_at);
