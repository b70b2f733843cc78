-- 0005_security: sealed tenant secrets and the admin audit log.
--
-- tenant_secrets.ciphertext is AES-256-GCM output of internal/secrets
-- ("bsec1:<key id>:<base64>"), bound to (user_id, name); the plaintext is
-- never stored. hint is the masked form the API may show.

CREATE TABLE tenant_secrets (
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    hint       TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    method      TEXT NOT NULL,
    route       TEXT NOT NULL,
    target_user TEXT NOT NULL DEFAULT '',
    remote_addr TEXT NOT NULL DEFAULT '',
    status      INTEGER NOT NULL DEFAULT 0
);
