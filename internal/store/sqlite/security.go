package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/berth/berth"
)

var (
	_ berth.SecretStore = (*Store)(nil)
	_ berth.AuditLog    = (*Store)(nil)
)

// PutSecret inserts or replaces a sealed secret.
func (s *Store) PutSecret(ctx context.Context, sec berth.Secret) error {
	op := "put secret " + sec.Name + " of user " + sec.UserID
	if sec.UpdatedAt.IsZero() {
		sec.UpdatedAt = time.Now()
	}
	_, err := s.writer.ExecContext(ctx, `INSERT INTO tenant_secrets (user_id, name, ciphertext, hint, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, name) DO UPDATE SET ciphertext = excluded.ciphertext, hint = excluded.hint, updated_at = excluded.updated_at`,
		sec.UserID, sec.Name, sec.Ciphertext, sec.Hint, formatTime(sec.UpdatedAt))
	if err != nil && strings.Contains(err.Error(), "FOREIGN KEY") {
		return notFound("user", sec.UserID)
	}
	if err != nil {
		return mapErr(op, err)
	}
	return nil
}

// ListSecrets returns a user's sealed secrets by name (all users' when
// userID is empty).
func (s *Store) ListSecrets(ctx context.Context, userID string) ([]berth.Secret, error) {
	q := `SELECT user_id, name, ciphertext, hint, updated_at FROM tenant_secrets`
	args := []any{}
	if userID != "" {
		q += ` WHERE user_id = ?`
		args = append(args, userID)
	}
	rows, err := s.reader.QueryContext(ctx, q+` ORDER BY user_id, name`, args...)
	if err != nil {
		return nil, mapErr("list secrets", err)
	}
	defer rows.Close()
	var out []berth.Secret
	for rows.Next() {
		var sec berth.Secret
		var at string
		if err := rows.Scan(&sec.UserID, &sec.Name, &sec.Ciphertext, &sec.Hint, &at); err != nil {
			return nil, mapErr("list secrets", err)
		}
		if sec.UpdatedAt, err = parseTime(at); err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, mapErr("list secrets", rows.Err())
}

// DeleteSecret removes one secret.
func (s *Store) DeleteSecret(ctx context.Context, userID, name string) error {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM tenant_secrets WHERE user_id = ? AND name = ?`, userID, name)
	if err != nil {
		return mapErr("delete secret", err)
	}
	return requireRow(res, "secret", name)
}

// AppendAudit records one admin action.
func (s *Store) AppendAudit(ctx context.Context, e berth.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	_, err := s.writer.ExecContext(ctx, `INSERT INTO audit_log (time, actor, method, route, target_user, remote_addr, status)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, formatTime(e.Time), e.Actor, e.Method, e.Route, e.TargetUser, e.RemoteAddr, e.Status)
	return mapErr("append audit entry", err)
}

// ListAudit returns up to limit entries older than beforeID, newest first.
func (s *Store) ListAudit(ctx context.Context, beforeID int64, limit int) ([]berth.AuditEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q := `SELECT id, time, actor, method, route, target_user, remote_addr, status FROM audit_log`
	args := []any{}
	if beforeID > 0 {
		q += ` WHERE id < ?`
		args = append(args, beforeID)
	}
	args = append(args, limit)
	rows, err := s.reader.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, mapErr("list audit log", err)
	}
	defer rows.Close()
	out := []berth.AuditEntry{}
	for rows.Next() {
		var e berth.AuditEntry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Method, &e.Route, &e.TargetUser, &e.RemoteAddr, &e.Status); err != nil {
			return nil, mapErr("list audit log", err)
		}
		if e.Time, err = parseTime(at); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, mapErr("list audit log", rows.Err())
}
