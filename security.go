package berth

import (
	"context"
	"time"
)

// Secret is one encrypted per-tenant secret, injected into the tenant's
// containers as the environment variable Name. Ciphertext is what the
// secrets package sealed; the plaintext is never stored. Hint is a masked
// form safe to show ("sk-…f3a9").
type Secret struct {
	UserID     string
	Name       string
	Ciphertext string
	Hint       string
	UpdatedAt  time.Time
}

// SecretStore keeps tenant secrets (sealed). Another tenant's secret is
// ErrNotFound.
type SecretStore interface {
	// PutSecret inserts or replaces a secret. ErrNotFound when the user
	// does not exist.
	PutSecret(ctx context.Context, s Secret) error
	// ListSecrets returns a user's secrets by name (every user's when
	// userID is empty: for key rotation).
	ListSecrets(ctx context.Context, userID string) ([]Secret, error)
	// DeleteSecret removes one secret. ErrNotFound when there is none.
	DeleteSecret(ctx context.Context, userID, name string) error
}

// AuditEntry is one admin action: who did what to whom, when, from where.
type AuditEntry struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`       // "admin" or "user:<id>" for an admin user's token
	Method     string    `json:"method"`      // HTTP method
	Route      string    `json:"route"`       // the route pattern, e.g. POST /api/containers/create
	TargetUser string    `json:"target_user"` // the user acted on, if any
	RemoteAddr string    `json:"remote_addr"` // the client's address
	Status     int       `json:"status"`      // HTTP status answered
}

// AuditLog records admin actions. Entries are never changed or removed.
type AuditLog interface {
	// AppendAudit records one entry; its ID and Time are filled in when zero.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// ListAudit returns up to limit entries with ID < beforeID (all when
	// beforeID <= 0), newest first.
	ListAudit(ctx context.Context, beforeID int64, limit int) ([]AuditEntry, error)
}
